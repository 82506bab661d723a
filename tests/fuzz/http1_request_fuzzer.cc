// Client bytes through what a downstream HTTP/1.1 connection does with them: the line guard and
// the strict parser, one pipelined message after another, then the head frontdoor writes
// upstream for each request it accepts. That head must parse, with the same strict parser, as
// one request with the same method, path and framing, and exactly one Host: anything else is a
// request the upstream could read differently from frontdoor (smuggling).
//
// Input: one byte choosing how the bytes arrive (0: at once, n: n bytes per read), then the
// bytes the client sends.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/header_rewrite.h"
#include "proxy/http1_parser.h"
#include "tests/fuzz/fuzz_support.h"

namespace fd::proxy {
namespace {

using fuzz::check;

// The defaults of limits.max_header_bytes and limits.max_headers.
constexpr uint32_t MAX_HEAD_BYTES = 65536;
constexpr uint32_t MAX_HEADERS = 100;

class Counter : public Http1Parser::Handler {
 public:
  bool on_head() override {
    ++heads;
    return false;
  }
  void on_body(const char*, size_t len) override { body += len; }
  void on_message_complete() override { ++messages; }

  int heads = 0;
  int messages = 0;
  size_t body = 0;
};

int count_headers(const RequestHead& req, std::string_view name) {
  return static_cast<int>(std::count_if(req.headers.begin(), req.headers.end(),
                                        [&](const Header& h) { return iequals(h.name, name); }));
}

void check_upstream_head(const RequestHead& req) {
  ForwardContext ctx;
  ctx.client_ip = "2001:db8::1";
  ctx.proto = "https";
  ctx.request_id = "fuzz-1";
  ctx.websocket = is_websocket_upgrade(req);
  std::string head;
  build_upstream_request(req, ctx, &head);

  Counter counter;
  Http1Parser again(Http1Parser::Kind::request, &counter, UINT32_MAX);
  auto out = again.execute(head.data(), head.size());
  check(out.status != Http1Parser::Status::error, "the upstream head does not parse");
  check(out.consumed == head.size(), "the upstream head is more than one message head");
  check(again.head_complete(), "the upstream head is incomplete");
  const RequestHead& up = again.request();
  check(up.method == req.method, "the upstream method differs");
  check(up.target == req.target, "the upstream target differs");
  check(up.chunked == req.chunked, "the upstream chunked framing differs");
  check(req.chunked || up.content_length == req.content_length,
        "the upstream Content-Length differs");
  check(count_headers(up, "host") == 1, "the upstream head has no single Host");
  check(count_headers(up, "x-request-id") == 1, "the upstream head has no single X-Request-Id");
}

}  // namespace
}  // namespace fd::proxy

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fd::proxy::Http1Parser;
  if (size == 0) {
    return 0;
  }
  size_t step = data[0] == 0 ? size : data[0];
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  size_t len = size - 1;

  fd::proxy::Counter counter;
  Http1Parser parser(Http1Parser::Kind::request, &counter, fd::proxy::MAX_HEAD_BYTES,
                     fd::proxy::MAX_HEADERS);
  int checked = 0;
  size_t pos = 0;
  while (pos < len) {
    size_t n = std::min(step, len - pos);
    auto out = parser.execute(bytes + pos, n);
    fd::fuzz::check(out.consumed <= n, "consumed more than it was given");
    pos += out.consumed;
    // A head is forwarded as soon as it is accepted, even if its body turns out bad.
    if (counter.heads > checked) {
      checked = counter.heads;
      fd::proxy::check_upstream_head(parser.request());
    }
    if (out.status == Http1Parser::Status::error) {
      fd::fuzz::check(out.http_status == 400 || out.http_status == 414 || out.http_status == 431,
                      "a refused request gets a status other than 400, 414 or 431");
      fd::fuzz::check(!out.reason.empty(), "a refused request has no reason");
      break;
    }
    if (out.status == Http1Parser::Status::more) {
      fd::fuzz::check(out.consumed == n, "asked for more without taking all it was given");
      continue;
    }
    // message_done. After an upgrade the bytes belong to the tunnel, not to HTTP.
    if (fd::proxy::is_websocket_upgrade(parser.request())) {
      break;
    }
    parser.next_message();
  }
  fd::fuzz::check(counter.messages <= counter.heads, "a message completed without a head");
  return 0;
}
