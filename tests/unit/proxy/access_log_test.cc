#include "proxy/access_log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace fd::proxy {
namespace {

struct Fixture {
  std::string client = "192.0.2.7";
  std::string method = "GET";
  AccessRecord record() const {
    AccessRecord r;
    r.client = client;
    r.method = method;
    r.host = "app.example";
    r.path = "/a/b?c=1&d=%20";
    r.status = 200;
    r.bytes_in = 12;
    r.bytes_out = 16384;
    r.duration_ms = 12.3456;
    r.upstream = "127.0.0.1:9101";
    r.request_id = "0123456789abcdef0123456789abcdef";
    return r;
  }
};

// The direct line is the line nlohmann::json would write for the same fields, byte for byte
// (nlohmann sorts keys): parsing and dumping it again gives it back.
TEST(AccessLog, PlainFieldsGiveTheLineJsonWouldWrite) {
  Fixture f;
  AccessRecord r = f.record();
  std::string line;
  format_access_line(r, &line);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j.dump() + "\n", line);
  EXPECT_EQ(j["msg"], "access");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["client"], "192.0.2.7");
  EXPECT_EQ(j["path"], "/a/b?c=1&d=%20");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["bytes_out"], 16384);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 12.345);
  EXPECT_FALSE(j.contains("error"));
  EXPECT_EQ(j["ts"].get<std::string>().size(), 24u);  // 2026-11-25T11:17:12.123Z

  r.error = "upstream timed out";
  format_access_line(r, &line);
  j = nlohmann::json::parse(line);
  EXPECT_EQ(j["error"], "upstream timed out");
  EXPECT_EQ(j.dump() + "\n", line);
}

TEST(AccessLog, FieldsThatNeedEscapingStillGiveOneValidLine) {
  Fixture f;
  AccessRecord r = f.record();
  r.path = "/q\"uote\\back";
  r.host = "h\x01st";
  r.error = "bad \xff byte\nnext";
  std::string line;
  format_access_line(r, &line);
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["path"], "/q\"uote\\back");
  EXPECT_EQ(j["host"], "h\x01st");
  EXPECT_EQ(j["error"], "bad \xef\xbf\xbd byte\nnext");  // invalid UTF-8 replaced by U+FFFD
}

}  // namespace
}  // namespace fd::proxy
