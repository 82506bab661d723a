#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "proxy/http_message.h"

namespace fd::proxy {

// What the proxy knows about the client side of a request, for the forwarding headers.
struct ForwardContext {
  std::string_view client_ip;   // textual address, no port: "127.0.0.1", "::1"
  std::string_view proto;       // "https" or "http"
  std::string_view request_id;  // the id this request carries upstream and in the access log
  // The request is a WebSocket upgrade we proxy: Connection: Upgrade and Upgrade: websocket go
  // upstream instead of being stripped as hop-by-hop.
  bool websocket = false;
};

// How a message body is framed on the wire we write.
enum class BodyFraming {
  none,            // no body (HEAD, 204, 304, 1xx, or a request without one)
  content_length,  // Content-Length as received
  chunked,         // Transfer-Encoding: chunked, written by us
  until_close,     // body ends when we close the connection (HTTP/1.0 client)
};

// Serializes |req| for the upstream as an HTTP/1.1 request head (ending in CRLF CRLF): the
// target (origin-form), Host passed through (empty when an HTTP/1.0 client sent none),
// hop-by-hop headers (Connection and the names it lists, Keep-Alive, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-*) removed, X-Forwarded-For and Forwarded appended to,
// X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id set, and Transfer-Encoding: chunked
// when the body is chunked. With |ctx.websocket| the head carries Connection: Upgrade and
// Upgrade: websocket (the Sec-WebSocket-* headers pass as end-to-end). Appends to |out|, so
// that a caller may reuse one buffer for every request.
void build_upstream_request(const RequestHead& req, const ForwardContext& ctx, std::string* out);

// True when |req| asks for a WebSocket upgrade over HTTP/1.1 (RFC 6455 §4.1): method GET, an
// Upgrade header listing "websocket" and a Connection header listing "upgrade", both
// case-insensitive.
bool is_websocket_upgrade(const RequestHead& req);

// The headers of one message that describe one hop only: Connection, Keep-Alive, TE, Trailer,
// Transfer-Encoding, Upgrade, Proxy-*, and those the message's Connection headers name, except
// Content-Length and Host, which no Connection header can make hop-by-hop. These are the
// connection-specific fields HTTP/2 forbids too (RFC 9113 §8.2.2).
//
// Made once per message, so that the Connection values are read once rather than once for
// every header. It refers to |headers|, which must outlive it.
class HopByHop {
 public:
  explicit HopByHop(const std::vector<Header>& headers);
  bool contains(std::string_view name) const;

 private:
  static constexpr size_t MAX_NAMED = 8;

  const std::vector<Header>& headers_;
  std::array<std::string_view, MAX_NAMED> named_;
  size_t named_count_ = 0;
  bool too_many_named_ = false;  // then each name is looked up in the Connection values
};

// Serializes the upstream's 101 |resp| for the client: hop-by-hop headers removed, then
// Connection: Upgrade and the upstream's Upgrade value (or "websocket") added back. The bytes
// after it belong to the tunnel.
std::string build_upgrade_response(const ResponseHead& resp);

// Serializes |resp| for the client: hop-by-hop headers removed, framing headers from |framing|
// (Content-Length kept only for content_length and none), Connection: close when |close|.
std::string build_downstream_response(const ResponseHead& resp, BodyFraming framing, bool close);

// The framing a response gets towards the client, from the upstream's head, the request method
// and the client's HTTP version.
BodyFraming response_framing(const ResponseHead& resp, bool head_request, bool client_http10);

// The longest X-Request-Id kept from a client.
constexpr size_t MAX_REQUEST_ID = 128;

// A client-sent X-Request-Id is kept when it is 1..MAX_REQUEST_ID characters of [A-Za-z0-9._:-].
bool is_valid_request_id(std::string_view id);

// A request id stored inline: every exchange carries one, and a std::string of 32 or more
// characters would be a heap allocation per request.
class RequestId {
 public:
  // |id| is at most MAX_REQUEST_ID characters (a valid or a generated id).
  void assign(std::string_view id) {
    size_ = static_cast<uint8_t>(std::min(id.size(), MAX_REQUEST_ID));
    std::memcpy(data_, id.data(), size_);
  }
  std::string_view view() const { return {data_, size_}; }
  bool empty() const { return size_ == 0; }

 private:
  char data_[MAX_REQUEST_ID];
  uint8_t size_ = 0;
};

// The host the request is for: the Host header, lowercased, without port; "" if none.
std::string request_host(const RequestHead& req);

// Removes a ":port" suffix (keeping IPv6 brackets) and lowercases.
std::string normalize_host(std::string_view host);

}  // namespace fd::proxy
