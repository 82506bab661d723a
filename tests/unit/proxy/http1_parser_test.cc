#include "proxy/http1_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fd::proxy {
namespace {

// Records what the parser reports, feeding it in pieces of |step| bytes.
class Recorder : public Http1Parser::Handler {
 public:
  explicit Recorder(Http1Parser::Kind kind, uint32_t max_head = 8192) : parser(kind, this, max_head) {}

  bool on_head() override {
    ++heads;
    return skip_body;
  }
  void on_body(const char* data, size_t len) override { body.append(data, len); }
  void on_message_complete() override { ++messages; }

  // Feeds |bytes| until a message ends or an error; returns the last outcome.
  Http1Parser::Outcome feed(const std::string& bytes, size_t step = 1 << 20) {
    Http1Parser::Outcome out;
    size_t pos = 0;
    while (pos < bytes.size()) {
      size_t n = std::min(step, bytes.size() - pos);
      out = parser.execute(bytes.data() + pos, n);
      pos += out.consumed;
      if (out.status != Http1Parser::Status::more) {
        break;
      }
    }
    rest = bytes.substr(pos);
    return out;
  }

  Http1Parser parser;
  int heads = 0;
  int messages = 0;
  bool skip_body = false;
  std::string body;
  std::string rest;
};

TEST(Http1Parser, ParsesRequestHeadInTinyPieces) {
  Recorder r(Http1Parser::Kind::request);
  auto out = r.feed("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Long:  value with spaces  \r\n\r\n", 1);
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  const RequestHead& h = r.parser.request();
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/a?b=1");
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers[1].name, "X-Long");
  EXPECT_EQ(h.headers[1].value, "value with spaces");
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.has_body());
}

TEST(Http1Parser, StopsAfterEachPipelinedRequest) {
  Recorder r(Http1Parser::Kind::request);
  std::string two = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
  auto out = r.feed(two);
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  EXPECT_EQ(r.parser.request().target, "/1");
  EXPECT_EQ(r.rest, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  r.parser.next_message();
  out = r.feed(r.rest);
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  EXPECT_EQ(r.parser.request().target, "/2");
  EXPECT_EQ(r.messages, 2);
}

TEST(Http1Parser, DecodesChunkedBody) {
  Recorder r(Http1Parser::Kind::request);
  auto out = r.feed(
      "POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
      3);
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  EXPECT_TRUE(r.parser.request().chunked);
  EXPECT_EQ(r.body, "hello world");
}

TEST(Http1Parser, TrailersDoNotJoinTheHead) {
  // Found by tests/fuzz/http1_request: trailer fields were appended to the head's headers, so
  // the head read after the body had two Hosts.
  Recorder r(Http1Parser::Kind::request);
  auto out = r.feed(
      "POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nhi\r\n0\r\nHost: y\r\nX-Checksum: 1\r\n\r\n");
  EXPECT_EQ(out.status, Http1Parser::Status::message_done) << out.reason;
  ASSERT_EQ(r.parser.request().headers.size(), 2u);
  EXPECT_EQ(*r.parser.request().find("host"), "x");
  EXPECT_EQ(r.body, "hi");
}

TEST(Http1Parser, AbsoluteFormBecomesOriginForm) {
  for (auto [sent, origin] : std::vector<std::pair<std::string, std::string>>{
           {"https://h:1/a/b?c", "/a/b?c"},
           {"http://h:1", "/"},
           {"HTTP://h:1?x=1", "/?x=1"},  // found by tests/fuzz/http1_request: went up as "?x=1"
           {"/plain?q", "/plain?q"}}) {
    Recorder r(Http1Parser::Kind::request);
    auto out = r.feed("GET " + sent + " HTTP/1.1\r\nHost: h:1\r\n\r\n");
    EXPECT_EQ(out.status, Http1Parser::Status::message_done) << sent << ": " << out.reason;
    EXPECT_EQ(r.parser.request().target, origin) << sent;
  }
  Recorder options(Http1Parser::Kind::request);
  EXPECT_EQ(options.feed("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").status,
            Http1Parser::Status::message_done);
  EXPECT_EQ(options.parser.request().target, "*");
}

TEST(Http1Parser, ContentLengthBody) {
  Recorder r(Http1Parser::Kind::request);
  auto out = r.feed("PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcdGET");
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  EXPECT_EQ(r.parser.request().content_length, 4);
  EXPECT_EQ(r.body, "abcd");
  EXPECT_EQ(r.rest, "GET");
}

struct BadRequest {
  const char* name;
  std::string bytes;
  int status;
};

class Http1ParserRejects : public ::testing::TestWithParam<BadRequest> {};

TEST_P(Http1ParserRejects, WithStatus) {
  Recorder r(Http1Parser::Kind::request, 256);
  auto out = r.feed(GetParam().bytes);
  EXPECT_EQ(out.status, Http1Parser::Status::error) << GetParam().name;
  EXPECT_EQ(out.http_status, GetParam().status) << GetParam().name;
  EXPECT_FALSE(out.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, Http1ParserRejects,
    ::testing::Values(
        BadRequest{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400},
        BadRequest{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        BadRequest{"cl and te", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n", 400},
        BadRequest{"two content-lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                   "Content-Length: 4\r\n\r\n", 400},
        BadRequest{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 400},
        BadRequest{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
        BadRequest{"NUL in value", std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26), 400},
        BadRequest{"obs-fold after an empty value",
                   "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400},
        BadRequest{"whitespace before the first header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400},
        BadRequest{"bare LF after the request line", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400},
        BadRequest{"bare CR", "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400},
        BadRequest{"bare LF inside a header line",
                   "GET / HTTP/1.1\r\nHost: x\r\nX-Long: abc\nY: z\r\n\r\n", 400},
        BadRequest{"two spaces in the request line", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        BadRequest{"tab in the request line", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        BadRequest{"te gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
        BadRequest{"te twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n", 400},
        BadRequest{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
        BadRequest{"no host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400},
        BadRequest{"HTTP/0.9 (no version)", "GET /P/0.1\r\n\r\n", 400},
        BadRequest{"CONNECT", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", 400},
        BadRequest{"absolute-form of another scheme", "GET tp://e/?a HTTP/1.1\r\nHost: e\r\n\r\n", 400},
        BadRequest{"fragment", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        BadRequest{"asterisk for GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        BadRequest{"absolute-form for another host",
                   "GET http://y/a HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        BadRequest{"head too large", "GET / HTTP/1.1\r\nX: "
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", 431},
        BadRequest{"target too long", "GET /"
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", 414}));

// The line guard skips from a header line's first byte to its CR in one search; a head cut
// anywhere, even inside that stretch, reads the same.
TEST(Http1Parser, LineChecksHoldAtEveryCut) {
  const std::string good = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: some value\r\n\r\n";
  const std::string bad = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: some\nvalue\r\n\r\n";
  for (size_t cut = 1; cut < good.size(); ++cut) {
    Recorder r(Http1Parser::Kind::request);
    Http1Parser::Outcome first = r.parser.execute(good.data(), cut);
    ASSERT_EQ(first.status, Http1Parser::Status::more) << cut;
    Http1Parser::Outcome out = r.parser.execute(good.data() + cut, good.size() - cut);
    EXPECT_EQ(out.status, Http1Parser::Status::message_done) << cut;
  }
  for (size_t cut = 1; cut < bad.size(); ++cut) {
    Recorder r(Http1Parser::Kind::request);
    Http1Parser::Outcome out = r.parser.execute(bad.data(), cut);
    if (out.status == Http1Parser::Status::more) {
      out = r.parser.execute(bad.data() + cut, bad.size() - cut);
    }
    EXPECT_EQ(out.status, Http1Parser::Status::error) << cut;
    EXPECT_EQ(out.reason, "bare LF in the message head") << cut;
  }
}

TEST(Http1Parser, HeaderCountLimit) {
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 4; ++i) {
    head += "X-" + std::to_string(i) + ": y\r\n";
  }
  head += "\r\n";
  Http1Parser::Outcome out;
  {
    Recorder r(Http1Parser::Kind::request);
    Http1Parser five(Http1Parser::Kind::request, &r, 8192, 5);
    out = five.execute(head.data(), head.size());
    EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  }
  {
    Recorder r(Http1Parser::Kind::request);
    Http1Parser four(Http1Parser::Kind::request, &r, 8192, 4);
    out = four.execute(head.data(), head.size());
    EXPECT_EQ(out.status, Http1Parser::Status::error);
    EXPECT_EQ(out.http_status, 431);
  }
}

TEST(Http1Parser, AcceptsWhatRfc9112Allows) {
  for (std::string head : {"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",  // an empty line first
                           "GET / HTTP/1.0\r\n\r\n",                   // HTTP/1.0 needs no Host
                           "GET HTTP://X:8/a?b HTTP/1.1\r\nHost: x:8\r\n\r\n",
                           "GET / HTTP/1.1\r\nHost: x\r\nX:\t a \r\n\r\n"}) {
    Recorder r(Http1Parser::Kind::request);
    EXPECT_EQ(r.feed(head, 1).status, Http1Parser::Status::message_done) << head;
  }
  Recorder r(Http1Parser::Kind::response);
  EXPECT_EQ(r.feed("HTTP/1.1 200  All  fine\r\nContent-Length: 0\r\n\r\n").status,
            Http1Parser::Status::message_done);
}

TEST(Http1Parser, LineChecksStartAgainForEachMessage) {
  Recorder r(Http1Parser::Kind::request);
  auto out = r.feed("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET  /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  r.parser.next_message();
  out = r.feed(r.rest);
  EXPECT_EQ(out.status, Http1Parser::Status::error);
  EXPECT_EQ(out.reason, "request line parts not separated by single spaces");
}

TEST(Http1Parser, ResponseToHeadHasNoBody) {
  Recorder r(Http1Parser::Kind::response);
  r.skip_body = true;
  auto out = r.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  EXPECT_EQ(r.parser.response().status, 200);
  EXPECT_EQ(r.parser.response().reason, "OK");
  EXPECT_EQ(r.parser.response().content_length, 100);
}

TEST(Http1Parser, CloseDelimitedResponseCompletesAtEof) {
  Recorder r(Http1Parser::Kind::response);
  auto out = r.feed("HTTP/1.0 200 OK\r\n\r\nbody bytes");
  EXPECT_EQ(out.status, Http1Parser::Status::more);
  EXPECT_TRUE(r.parser.needs_eof());
  EXPECT_TRUE(r.parser.finish());
  EXPECT_EQ(r.messages, 1);
  EXPECT_EQ(r.body, "body bytes");
  EXPECT_FALSE(r.parser.response().keep_alive);
}

TEST(Http1Parser, InterimResponseThenFinal) {
  Recorder r(Http1Parser::Kind::response);
  auto out = r.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  EXPECT_EQ(r.parser.response().status, 100);
  r.parser.next_message();
  out = r.feed(r.rest);
  EXPECT_EQ(out.status, Http1Parser::Status::message_done);
  EXPECT_EQ(r.parser.response().status, 201);
}

// The response head is reused from message to message on a pooled connection: nothing of
// the previous one stays.
TEST(Http1Parser, NextResponseStartsWithAFreshHead) {
  Recorder r(Http1Parser::Kind::response);
  auto out = r.feed(
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-A: 1\r\nX-B: a value longer than sixteen\r\n"
      "\r\nx");
  ASSERT_EQ(out.status, Http1Parser::Status::message_done);
  ASSERT_EQ(r.parser.response().headers.size(), 3u);
  r.parser.next_message();
  out = r.feed("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_EQ(out.status, Http1Parser::Status::message_done);
  const ResponseHead& head = r.parser.response();
  EXPECT_EQ(head.status, 404);
  EXPECT_EQ(head.reason, "Not Found");
  EXPECT_EQ(head.content_length, -1);
  EXPECT_TRUE(head.chunked);
  ASSERT_EQ(head.headers.size(), 1u);
  EXPECT_EQ(head.headers[0].name, "Transfer-Encoding");
  EXPECT_EQ(head.headers[0].value, "chunked");
}

}  // namespace
}  // namespace fd::proxy
