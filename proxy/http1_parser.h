#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/http1_line_guard.h"
#include "proxy/http_message.h"

namespace fd::proxy {

// Strict HTTP/1.x parser over llhttp for one connection direction. Fed bytes, it fills a
// RequestHead or ResponseHead and reports body bytes; it does no I/O. It stops after each
// complete message so pipelined requests are handled one at a time.
class Http1Parser {
 public:
  enum class Kind { request, response };

  // Told about each message. Called from inside execute(); must not destroy the parser.
  class Handler {
   public:
    virtual ~Handler() = default;
    // The head is complete (request() / response()). For responses, return true when the
    // message has no body whatever its headers say (the answer to a HEAD request).
    virtual bool on_head() = 0;
    // Decoded body bytes (chunk framing removed). |data| lives only during the call.
    virtual void on_body(const char* data, size_t len) = 0;
    virtual void on_message_complete() = 0;
  };

  enum class Status {
    more,          // all bytes consumed, message not complete
    message_done,  // a message ended at |consumed|; call next_message() before feeding more
    error,
  };

  struct Outcome {
    Status status = Status::more;
    size_t consumed = 0;
    int http_status = 0;  // for errors in a request: 400, 414 or 431
    std::string reason;
  };

  // |max_headers|: more header fields than this is a 431 (0 = no limit).
  Http1Parser(Kind kind, Handler* handler, uint32_t max_head_bytes, uint32_t max_headers = 0);
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  Outcome execute(const char* data, size_t len);
  // Signals EOF: completes a close-delimited response body. Returns false if a message was cut.
  bool finish();
  // Readies the parser for the next message on the same connection after message_done.
  void next_message();

  RequestHead& request() { return request_; }
  ResponseHead& response() { return response_; }
  // True once any byte of the current message has been seen.
  bool in_message() const { return in_message_; }
  bool head_complete() const { return head_complete_; }
  // True when the current response body runs until the connection closes.
  bool needs_eof() const;

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_status(llhttp_t* p, const char* at, size_t len);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  // Adds |len| bytes to the head size; false (with an error set) once over the limit.
  bool count_head(size_t len, bool url);

  llhttp_t parser_;
  llhttp_settings_t settings_;
  Kind kind_;
  Handler* handler_;
  uint32_t max_head_bytes_;
  uint32_t max_headers_;
  size_t head_bytes_ = 0;
  bool in_message_ = false;
  bool head_complete_ = false;
  int limit_status_ = 0;
  const char* head_problem_ = nullptr;  // why on_headers_complete refused the head
  std::string field_;
  std::string value_;
  Http1LineGuard guard_;
  RequestHead request_;
  ResponseHead response_;
};

}  // namespace fd::proxy
