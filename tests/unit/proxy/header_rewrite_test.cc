#include "proxy/header_rewrite.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

RequestHead make_request(std::vector<Header> headers, std::string target = "/path?q=1") {
  RequestHead r;
  r.method = "GET";
  r.target = std::move(target);
  r.headers = std::move(headers);
  return r;
}

ForwardContext ctx(std::string_view ip = "198.51.100.7") { return {ip, "https", "rid-1"}; }

std::string build_upstream_request(const RequestHead& req, const ForwardContext& c) {
  std::string out;
  fd::proxy::build_upstream_request(req, c, &out);
  return out;
}

TEST(HeaderRewrite, AddsForwardingHeadersAndKeepsHost) {
  auto req = make_request({{"Host", "Example.com:8443"}, {"Accept", "*/*"}});
  std::string out = build_upstream_request(req, ctx());
  EXPECT_EQ(out,
            "GET /path?q=1 HTTP/1.1\r\n"
            "Host: Example.com:8443\r\n"
            "Accept: */*\r\n"
            "X-Forwarded-For: 198.51.100.7\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: Example.com:8443\r\n"
            "Forwarded: for=198.51.100.7;host=\"Example.com:8443\";proto=https\r\n"
            "X-Request-Id: rid-1\r\n"
            "\r\n");
}

TEST(HeaderRewrite, Http10WithoutHostGetsAnEmptyHostUpstream) {
  auto req = make_request({{"Accept", "*/*"}});
  req.version_minor = 0;
  std::string out = build_upstream_request(req, ctx());
  EXPECT_EQ(out,
            "GET /path?q=1 HTTP/1.1\r\n"
            "Accept: */*\r\n"
            "Host: \r\n"
            "X-Forwarded-For: 198.51.100.7\r\n"
            "X-Forwarded-Proto: https\r\n"
            "Forwarded: for=198.51.100.7;proto=https\r\n"
            "X-Request-Id: rid-1\r\n"
            "\r\n");
}

// One buffer serves every request of a worker: the head is appended after what it holds.
TEST(HeaderRewrite, AppendsToTheCallersBuffer) {
  auto req = make_request({{"Host", "a.example"}});
  std::string out = "kept";
  fd::proxy::build_upstream_request(req, ctx(), &out);
  EXPECT_EQ(out.rfind("keptGET /path?q=1 HTTP/1.1\r\nHost: a.example\r\n", 0), 0u) << out;
  EXPECT_EQ(out.substr(4), build_upstream_request(req, ctx()));
}

TEST(HeaderRewrite, AppendsToClientForwardedFor) {
  auto req = make_request({{"Host", "a"}, {"X-Forwarded-For", "203.0.113.9"},
                           {"Forwarded", "for=203.0.113.9"}});
  std::string out = build_upstream_request(req, ctx());
  EXPECT_NE(out.find("X-Forwarded-For: 203.0.113.9, 198.51.100.7\r\n"), std::string::npos);
  EXPECT_NE(out.find("Forwarded: for=203.0.113.9, for=198.51.100.7;host=a;proto=https\r\n"),
            std::string::npos);
}

TEST(HeaderRewrite, QuotesIpv6InForwarded) {
  auto req = make_request({{"Host", "a"}});
  std::string out = build_upstream_request(req, ctx("::1"));
  EXPECT_NE(out.find("Forwarded: for=\"[::1]\";host=a;proto=https\r\n"), std::string::npos);
  EXPECT_NE(out.find("X-Forwarded-For: ::1\r\n"), std::string::npos);
}

TEST(HeaderRewrite, RemovesHopByHopAndConnectionNamedHeaders) {
  auto req = make_request({{"Host", "a"},
                           {"Connection", "keep-alive, X-Custom-Hop"},
                           {"X-Custom-Hop", "1"},
                           {"Keep-Alive", "timeout=5"},
                           {"TE", "trailers"},
                           {"Trailer", "X"},
                           {"Upgrade", "foo"},
                           {"Proxy-Authorization", "secret"},
                           {"Proxy-Connection", "keep-alive"},
                           {"X-Keep-Me", "1"}});
  std::string out = build_upstream_request(req, ctx());
  for (const char* gone : {"Connection:", "X-Custom-Hop", "Keep-Alive", "TE:", "Trailer",
                           "Upgrade", "Proxy-"}) {
    EXPECT_EQ(out.find(gone), std::string::npos) << gone;
  }
  EXPECT_NE(out.find("X-Keep-Me: 1\r\n"), std::string::npos);
}

TEST(HeaderRewrite, ReplacesClientForwardedProtoHostAndRequestId) {
  auto req = make_request({{"Host", "a"}, {"X-Forwarded-Proto", "http"},
                           {"X-Forwarded-Host", "evil"}, {"X-Request-Id", "client"}});
  std::string out = build_upstream_request(req, ctx());
  EXPECT_EQ(out.find("evil"), std::string::npos);
  EXPECT_EQ(out.find("X-Forwarded-Proto: http\r\n"), std::string::npos);
  EXPECT_EQ(out.find("client"), std::string::npos);
  EXPECT_NE(out.find("X-Request-Id: rid-1\r\n"), std::string::npos);
}

TEST(HeaderRewrite, ChunkedRequestIsReframed) {
  auto req = make_request({{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, "/x/y?z");
  req.chunked = true;
  std::string out = build_upstream_request(req, ctx());
  EXPECT_EQ(out.rfind("GET /x/y?z HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(out.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(out.find("Transfer-Encoding"), out.rfind("Transfer-Encoding"));
}

TEST(HeaderRewrite, ResponseFraming) {
  ResponseHead r;
  r.status = 200;
  r.content_length = 10;
  EXPECT_EQ(response_framing(r, false, false), BodyFraming::content_length);
  EXPECT_EQ(response_framing(r, true, false), BodyFraming::none);
  r.content_length = -1;
  EXPECT_EQ(response_framing(r, false, false), BodyFraming::chunked);
  EXPECT_EQ(response_framing(r, false, true), BodyFraming::until_close);
  r.chunked = true;
  EXPECT_EQ(response_framing(r, false, false), BodyFraming::chunked);
  r.status = 204;
  EXPECT_EQ(response_framing(r, false, false), BodyFraming::none);
  r.status = 304;
  EXPECT_EQ(response_framing(r, false, false), BodyFraming::none);
}

TEST(HeaderRewrite, ConnectionCannotStripContentLengthOrHost) {
  // Found by tests/fuzz/http1_request: "Connection: content-length" sent the body upstream
  // without its length, where it would be read as the next request.
  auto req = make_request({{"Host", "a"}, {"Connection", "content-length, host"},
                           {"Content-Length", "4"}});
  req.method = "POST";
  req.content_length = 4;
  std::string out = build_upstream_request(req, ctx());
  EXPECT_NE(out.find("\r\nContent-Length: 4\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\nHost: a\r\n"), std::string::npos) << out;
  ResponseHead r;
  r.status = 200;
  r.headers = {{"Connection", "Content-Length"}, {"Content-Length", "5"}};
  EXPECT_EQ(build_downstream_response(r, BodyFraming::content_length, false),
            "HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\n");
}

TEST(HopByHop, FixedNamesAndProxyPrefixInAnyCase) {
  std::vector<Header> none;
  HopByHop hop(none);
  for (const char* name : {"Connection", "keep-alive", "TE", "Trailer", "transfer-encoding",
                           "UPGRADE", "Proxy-Connection", "proxy-authorization"}) {
    EXPECT_TRUE(hop.contains(name)) << name;
  }
  for (const char* name : {"Host", "Content-Length", "X-Proxy", "Tee", "Accept"}) {
    EXPECT_FALSE(hop.contains(name)) << name;
  }
}

TEST(HopByHop, NamesFromEveryConnectionHeaderExceptFramingAndHost) {
  std::vector<Header> headers = {{"Connection", " X-A ,\tx-b,, "},
                                 {"X-A", "1"},
                                 {"connection", "X-C, Content-Length, HOST"},
                                 {"X-D", "2"}};
  HopByHop hop(headers);
  EXPECT_TRUE(hop.contains("x-a"));
  EXPECT_TRUE(hop.contains("X-B"));
  EXPECT_TRUE(hop.contains("x-c"));
  EXPECT_FALSE(hop.contains("X-D"));
  EXPECT_FALSE(hop.contains(""));
  EXPECT_FALSE(hop.contains("content-length"));
  EXPECT_FALSE(hop.contains("Host"));
}

TEST(HopByHop, ManyNamedHeadersAreAllFound) {
  std::string list = "content-length, host";
  for (int i = 0; i < 20; ++i) {
    list += ", X-" + std::to_string(i);
  }
  std::vector<Header> headers = {{"Connection", list}, {"Connection", "x-last"}};
  HopByHop hop(headers);
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(hop.contains("x-" + std::to_string(i))) << i;
  }
  EXPECT_TRUE(hop.contains("X-Last"));
  EXPECT_FALSE(hop.contains("X-20"));
  EXPECT_FALSE(hop.contains("Content-Length"));
  EXPECT_FALSE(hop.contains("Host"));
}

TEST(HeaderRewrite, DownstreamResponseStripsHopByHopAndSetsFraming) {
  ResponseHead r;
  r.status = 200;
  r.reason = "OK";
  r.headers = {{"Content-Type", "text/plain"}, {"Transfer-Encoding", "chunked"},
               {"Connection", "keep-alive"}, {"Keep-Alive", "timeout=5"}, {"X-A", "1"}};
  EXPECT_EQ(build_downstream_response(r, BodyFraming::chunked, false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
  r.headers = {{"Content-Length", "5"}};
  EXPECT_EQ(build_downstream_response(r, BodyFraming::content_length, true),
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(build_downstream_response(r, BodyFraming::until_close, true),
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
}

TEST(HeaderRewrite, RequestIdValidation) {
  EXPECT_TRUE(is_valid_request_id("abc-123"));
  EXPECT_TRUE(is_valid_request_id("a.b_c:d"));
  EXPECT_FALSE(is_valid_request_id(""));
  EXPECT_FALSE(is_valid_request_id("has space"));
  EXPECT_FALSE(is_valid_request_id("quote\""));
  EXPECT_FALSE(is_valid_request_id(std::string(129, 'a')));
  EXPECT_TRUE(is_valid_request_id(std::string(128, 'a')));
}

TEST(HeaderRewrite, NormalizesHosts) {
  EXPECT_EQ(normalize_host("Example.COM:443"), "example.com");
  EXPECT_EQ(normalize_host("[::1]:8443"), "[::1]");
  EXPECT_EQ(normalize_host("localhost"), "localhost");
}

TEST(HeaderRewrite, DetectsWebSocketUpgrade) {
  auto req = make_request(
      {{"Host", "a"}, {"Connection", "keep-alive, Upgrade"}, {"Upgrade", "WebSocket"}});
  EXPECT_TRUE(is_websocket_upgrade(req));
  req.method = "POST";
  EXPECT_FALSE(is_websocket_upgrade(req));
  EXPECT_FALSE(is_websocket_upgrade(make_request({{"Upgrade", "websocket"}})));
  EXPECT_FALSE(is_websocket_upgrade(make_request({{"Connection", "upgrade"}})));
  EXPECT_FALSE(is_websocket_upgrade(make_request({{"Connection", "upgrade"}, {"Upgrade", "h2c"}})));
}

TEST(HeaderRewrite, ForwardsUpgradeHeadersOnlyForWebSocket) {
  auto req = make_request({{"Host", "a"},
                           {"Connection", "Upgrade"},
                           {"Upgrade", "websocket"},
                           {"Sec-WebSocket-Key", "k"},
                           {"Sec-WebSocket-Version", "13"}});
  std::string plain = build_upstream_request(req, ctx());
  EXPECT_EQ(plain.find("Upgrade"), std::string::npos);
  EXPECT_NE(plain.find("Sec-WebSocket-Key: k\r\n"), std::string::npos);
  ForwardContext ws = ctx();
  ws.websocket = true;
  std::string out = build_upstream_request(req, ws);
  EXPECT_NE(out.find("Connection: Upgrade\r\nUpgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(out.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_EQ(out.find("Connection", out.find("Connection") + 1), std::string::npos);
}

TEST(HeaderRewrite, UpgradeResponseKeepsUpgradeHeaders) {
  ResponseHead resp;
  resp.status = 101;
  resp.reason = "Switching Protocols";
  resp.headers = {{"Upgrade", "websocket"},
                  {"Connection", "Upgrade"},
                  {"Sec-WebSocket-Accept", "abc"},
                  {"Keep-Alive", "x"}};
  EXPECT_EQ(build_upgrade_response(resp),
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Sec-WebSocket-Accept: abc\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: websocket\r\n"
            "\r\n");
}

}  // namespace
}  // namespace fd::proxy
