// Upstream bytes through what an upstream HTTP/1.1 connection does with them: the strict parser,
// skipping interim 1xx responses, then the head frontdoor writes to the client. That head must
// parse, with the same strict parser, as a response with the same status and the framing
// frontdoor chose, or the client would read the body differently from frontdoor.
//
// Input: one byte choosing how the bytes arrive (0: at once, n: n bytes per read), one byte of
// flags (1: the request was HEAD, 2: the client speaks HTTP/1.0, 4: frontdoor closes after
// this response), then the bytes the upstream sends.
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

// UpstreamConnection's limit on a response head.
constexpr uint32_t MAX_RESPONSE_HEAD = 256 * 1024;

class Counter : public Http1Parser::Handler {
 public:
  explicit Counter(bool head_request) : head_request_(head_request) {}
  bool on_head() override {
    ++heads;
    return head_request_;
  }
  void on_body(const char*, size_t len) override { body += len; }
  void on_message_complete() override { ++messages; }

  int heads = 0;
  int messages = 0;
  size_t body = 0;

 private:
  bool head_request_;
};

bool has_header(const ResponseHead& resp, std::string_view name) {
  return resp.find(name) != nullptr;
}

void check_downstream_head(const ResponseHead& resp, bool head_request, bool http10,
                           bool close) {
  if (resp.status == 101) {
    std::string text = build_upgrade_response(resp);
    Counter counter(false);
    Http1Parser again(Http1Parser::Kind::response, &counter, UINT32_MAX);
    auto out = again.execute(text.data(), text.size());
    check(out.status != Http1Parser::Status::error, "the 101 for the client does not parse");
    check(again.head_complete() && again.response().status == 101, "the 101 changed status");
    return;
  }
  BodyFraming framing = response_framing(resp, head_request, http10);
  std::string text = build_downstream_response(resp, framing, close);
  Counter counter(head_request);
  Http1Parser again(Http1Parser::Kind::response, &counter, UINT32_MAX);
  auto out = again.execute(text.data(), text.size());
  check(out.status != Http1Parser::Status::error, "the head for the client does not parse");
  check(out.consumed == text.size(), "the head for the client is more than one head");
  check(again.head_complete(), "the head for the client is incomplete");
  const ResponseHead& down = again.response();
  check(down.status == resp.status, "the status for the client differs");
  switch (framing) {
    case BodyFraming::chunked:
      check(down.chunked && !has_header(down, "content-length"),
            "a chunked body is not announced as chunked alone");
      break;
    case BodyFraming::content_length:
      check(!down.chunked && down.content_length == resp.content_length,
            "the Content-Length for the client differs");
      break;
    case BodyFraming::until_close:
      check(!down.chunked && down.content_length < 0 && !down.keep_alive,
            "a body until close is announced with a length or keep-alive");
      break;
    case BodyFraming::none:
      check(!down.chunked, "a response without a body is announced as chunked");
      break;
  }
  check(!close || !down.keep_alive, "a closing response does not say so");
}

}  // namespace
}  // namespace fd::proxy

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fd::proxy::Http1Parser;
  if (size < 2) {
    return 0;
  }
  size_t step = data[0] == 0 ? size : data[0];
  bool head_request = (data[1] & 1) != 0;
  bool http10 = (data[1] & 2) != 0;
  bool close = (data[1] & 4) != 0;
  const char* bytes = reinterpret_cast<const char*>(data + 2);
  size_t len = size - 2;

  fd::proxy::Counter counter(head_request);
  Http1Parser parser(Http1Parser::Kind::response, &counter, fd::proxy::MAX_RESPONSE_HEAD);
  int checked = 0;
  bool done = false;
  bool refused = false;  // frontdoor answers 502 and reads no more
  size_t pos = 0;
  while (pos < len && !done) {
    size_t n = std::min(step, len - pos);
    auto out = parser.execute(bytes + pos, n);
    fd::fuzz::check(out.consumed <= n, "consumed more than it was given");
    pos += out.consumed;
    const auto& resp = parser.response();
    bool interim = resp.status >= 100 && resp.status < 200 && resp.status != 101;
    if (counter.heads > checked) {
      checked = counter.heads;
      if (!interim) {
        fd::proxy::check_downstream_head(resp, head_request, http10, close);
      }
    }
    if (out.status == Http1Parser::Status::error) {
      refused = true;
      break;
    }
    if (resp.status == 101 && parser.head_complete()) {
      // Past a 101 come tunnel bytes, or nothing: frontdoor refuses a 101 it did not ask for.
      break;
    }
    if (out.status == Http1Parser::Status::more) {
      fd::fuzz::check(out.consumed == n, "asked for more without taking all it was given");
      continue;
    }
    if (interim) {
      parser.next_message();
      continue;
    }
    done = true;
  }
  const auto& head = parser.response();
  if (!done && !refused && parser.in_message() && parser.head_complete() && !head.chunked &&
      head.content_length < 0 && parser.needs_eof()) {
    // The upstream closed: that completes a body delimited by the close. (A chunked body cut
    // in its trailers can look close-delimited to llhttp; UpstreamConnection's finish() then
    // fails and the transfer counts as cut, which is right.)
    fd::fuzz::check(parser.finish(), "a body delimited by the close was not completed by it");
  }
  return 0;
}
