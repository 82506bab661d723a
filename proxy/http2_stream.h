#pragma once

#include <event2/buffer.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/block_cache.h"
#include "proxy/body_pace.h"
#include "proxy/downstream_stream.h"
#include "proxy/event_loop.h"
#include "proxy/exchange.h"
#include "proxy/http_message.h"

namespace fd::proxy {

class Http2Session;

// One client stream of an HTTP/2 connection: collects the request head from nghttp2's header
// callbacks, converts it to a RequestHead (RFC 9113 §8.3), hands request body bytes to its
// Exchange and queues the response body for nghttp2's data source. Owned by its Http2Session;
// dies through EventLoop::defer_delete after nghttp2 closed it. Worker thread only.
//
// Backpressure: request DATA is acknowledged (nghttp2_session_consume_stream) only while the
// Exchange accepts more, so a slow upstream stops the client at the stream window. Response
// bytes wait in |body_| until the client's window and the connection's output allow nghttp2
// to pull them; buffered() reports them so that the Exchange pauses its upstream.
class Http2Stream : public Deferrable, public DownstreamStream, public BlockCached {
 public:
  // |session| outlives the stream; |id| is the client's stream id.
  Http2Stream(Http2Session& session, int32_t id);
  ~Http2Stream() override;
  Http2Stream(const Http2Stream&) = delete;
  Http2Stream& operator=(const Http2Stream&) = delete;

  int32_t id() const { return id_; }
  // Moves the request head out, for the Exchange; complete once the session reported the
  // stream to its handler.
  RequestHead take_request() { return std::move(request_); }
  // Takes ownership of |exchange| (made with this stream as its DownstreamStream) and starts it.
  // May call back into this stream (a local 404 finishes the exchange at once).
  void attach(std::unique_ptr<Exchange> exchange);
  // The running exchange, or nullptr once it finished (or before attach).
  Exchange* exchange() const { return exchange_done_ ? nullptr : exchange_.get(); }
  // The request body, for limits.body_timeout and body_min_rate; the connection starts it
  // and checks it.
  BodyPace& body_pace() { return body_pace_; }
  // A request body is still coming for a running exchange.
  bool receiving_body() const { return !request_done_ && !closed_ && exchange() != nullptr; }
  // frontdoor itself is not taking the body (the upstream is slower than the client).
  bool body_held() const { return paused_; }
  // Cuts the stream with RST_STREAM CANCEL and aborts its exchange with |why|.
  void cut(const std::string& why);

  // The following are called by Http2Session from inside nghttp2 callbacks.
  //
  // One request header field; 0 or an nghttp2 error code for the callback to return.
  int on_header(std::string_view name, std::string_view value);
  // The request head is complete; |end_stream| when it carries no body. True when the request
  // is valid and should be served; false when the stream answered it itself (431, 501).
  bool on_head_complete(bool end_stream);
  // Request body bytes.
  void on_data(const char* data, size_t len);
  // The client finished its request (END_STREAM).
  void on_request_end();
  // nghttp2 closed the stream with |error_code|; a running exchange is aborted.
  void on_closed(uint32_t error_code);
  // A frame with END_STREAM left for the client: resets the stream if the request is unread.
  void on_end_stream_sent();
  // nghttp2's data source read callback: copies up to |len| queued response bytes into |buf|.
  ssize_t read_body(uint8_t* buf, size_t len, uint32_t* data_flags);
  // Called outside nghttp2 after bytes were pulled: lets a paused upstream resume.
  void notify_drained();

  // DownstreamStream
  void send_head(const ResponseHead& head) override;
  void send_body(const char* data, size_t len) override;
  void send_end() override;
  size_t buffered() const override;
  void pause_request_body(bool paused) override;
  void reset() override;
  void on_exchange_done() override;
  const ClientInfo& client() const override;

 private:
  // Answers without an exchange (header list too large, CONNECT).
  void respond_local(int status, const std::string& text);
  // Acknowledges |len| request body bytes so the client may send that many more.
  void consume(size_t len);
  // Resumes nghttp2's deferred data source after bytes or the end were queued.
  void resume();

  friend class Http2Session;  // keeps slot_

  Http2Session& session_;
  const int32_t id_;
  size_t slot_ = 0;  // index in the session's open streams
  RequestHead request_;
  bool head_request_ = false;  // the request's method is HEAD: responses carry no body
  std::string authority_;
  std::string cookie_;
  size_t header_bytes_ = 0;
  bool header_too_large_ = false;
  std::unique_ptr<Exchange> exchange_;
  evbuffer* body_;                 // response body bytes nghttp2 has not pulled yet
  bool response_no_body_ = false;  // the final head went out with END_STREAM
  bool response_started_ = false;  // a final head was submitted
  bool body_end_ = false;          // send_end() was called
  bool deferred_ = false;          // the data source returned NGHTTP2_ERR_DEFERRED
  bool request_done_ = false;      // END_STREAM received
  bool paused_ = false;            // the exchange cannot take more request body now
  bool closed_ = false;            // nghttp2 closed the stream
  bool exchange_done_ = false;
  bool reset_sent_ = false;
  size_t unconsumed_ = 0;  // request bytes received while paused, not yet acknowledged
  BodyPace body_pace_;
};

}  // namespace fd::proxy
