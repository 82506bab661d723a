#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/http_message.h"

namespace fd::proxy {

// What an Exchange knows about the client it answers.
struct ClientInfo {
  std::string ip;  // textual, no port
  bool tls = false;
  int64_t hsts_max_age = 0;  // seconds; 0 = no Strict-Transport-Security header
};

// The client side of one exchange: an HTTP/1.1 connection today, an HTTP/2 stream later. The
// Exchange produces a response as events; the stream frames and writes it. Worker thread only.
class DownstreamStream {
 public:
  virtual ~DownstreamStream() = default;
  // A response head: interim (1xx) ones may come before the final one.
  virtual void send_head(const ResponseHead& head) = 0;
  // Decoded body bytes; the stream applies its own framing.
  virtual void send_body(const char* data, size_t len) = 0;
  virtual void send_end() = 0;
  // Response bytes queued towards the client and not yet written.
  virtual size_t buffered() const = 0;
  // Stop (true) or resume (false) reading the request body while upstream cannot take it.
  virtual void pause_request_body(bool paused) = 0;
  // The response cannot be completed after its head was sent: cut the client's stream.
  virtual void reset() = 0;
  // The exchange has written its whole response (or reset). The stream may defer_delete it.
  virtual void on_exchange_done() = 0;
  virtual const ClientInfo& client() const = 0;
  // True when this stream can become a raw byte tunnel after a 101 (an HTTP/1.1 connection).
  // HTTP/2 streams say false: RFC 8441 extended CONNECT is not implemented.
  virtual bool can_tunnel() const { return false; }
  // The 101 head has been sent: from now on the stream is a raw byte tunnel. Client bytes go
  // to Exchange::on_tunnel_bytes, send_body() writes bytes unframed, and the stream never
  // parses HTTP again; the tunnel ends through on_exchange_done() or the stream closing.
  virtual void start_tunnel() {}
};

}  // namespace fd::proxy
