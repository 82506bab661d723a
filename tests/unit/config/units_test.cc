#include "config/units.h"

#include <gtest/gtest.h>

#include <string>

namespace fd::config {
namespace {

using namespace std::chrono_literals;

std::string duration_error(std::string_view text) {
  auto result = parse_duration(text);
  EXPECT_FALSE(result) << text;
  return result ? "" : result.error().message;
}

std::string host_port_error(std::string_view text) {
  auto result = parse_host_port(text);
  EXPECT_FALSE(result) << text;
  return result ? "" : result.error().message;
}

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(*parse_duration("250ms"), 250ms);
  EXPECT_EQ(*parse_duration("5s"), 5s);
  EXPECT_EQ(*parse_duration("2m"), 2min);
  EXPECT_EQ(*parse_duration("1h"), 1h);
  EXPECT_EQ(*parse_duration("30d"), 30 * 24h);
  EXPECT_EQ(*parse_duration("0s"), 0ms);
  EXPECT_EQ(*parse_duration("007s"), 7s);
}

TEST(ParseDuration, LargestValueFits) {
  EXPECT_EQ(parse_duration("9223372036854775807ms")->count(), INT64_MAX);
  EXPECT_EQ(*parse_duration("106751991167d"), 106751991167 * 24h);
}

TEST(ParseDuration, RejectsEmpty) {
  EXPECT_EQ(duration_error(""), "empty duration");
}

TEST(ParseDuration, RejectsMissingUnit) {
  EXPECT_EQ(duration_error("5"), "\"5\" has no unit (use ms, s, m, h or d)");
}

TEST(ParseDuration, RejectsUnknownUnit) {
  EXPECT_EQ(duration_error("5x"), "\"5x\" has an unknown unit \"x\" (use ms, s, m, h or d)");
  EXPECT_EQ(duration_error("5S"), "\"5S\" has an unknown unit \"S\" (use ms, s, m, h or d)");
  EXPECT_EQ(duration_error("5 s"), "\"5 s\" has an unknown unit \" s\" (use ms, s, m, h or d)");
  EXPECT_EQ(duration_error("1h30m"),
            "\"1h30m\" has an unknown unit \"h30m\" (use ms, s, m, h or d)");
}

TEST(ParseDuration, RejectsNegative) {
  EXPECT_EQ(duration_error("-5s"), "\"-5s\" is negative");
}

TEST(ParseDuration, RejectsFractions) {
  EXPECT_EQ(duration_error("1.5s"), "\"1.5s\" is not a whole number");
}

TEST(ParseDuration, RejectsNonNumbers) {
  EXPECT_EQ(duration_error("s"), "\"s\" does not start with a number");
  EXPECT_EQ(duration_error("+5s"), "\"+5s\" does not start with a number");
  EXPECT_EQ(duration_error(" 5s"), "\" 5s\" does not start with a number");
}

TEST(ParseDuration, RejectsOverflow) {
  // Too many digits for the integer itself.
  EXPECT_EQ(duration_error("99999999999999999999ms"), "\"99999999999999999999ms\" is too large");
  // Fits as a number, overflows once converted to milliseconds.
  EXPECT_EQ(duration_error("106751991168d"), "\"106751991168d\" is too large");
  EXPECT_EQ(duration_error("9223372036854775807s"), "\"9223372036854775807s\" is too large");
}

TEST(ParseRate, AcceptsBinaryUnitsPerSecond) {
  EXPECT_EQ(*parse_rate("0B/s"), 0u);
  EXPECT_EQ(*parse_rate("512B/s"), 512u);
  EXPECT_EQ(*parse_rate("1KiB/s"), 1024u);
  EXPECT_EQ(*parse_rate("3MiB/s"), 3u * 1024 * 1024);
  EXPECT_EQ(*parse_rate("1GiB/s"), 1024u * 1024 * 1024);
}

TEST(ParseRate, RejectsOtherSpellings) {
  for (std::string_view text : {"", "1KiB", "1KB/s", "1kib/s", "-1B/s", "1.5KiB/s", "KiB/s",
                                "1 KiB/s", "99999999999999999999B/s", "17179869184GiB/s"}) {
    EXPECT_FALSE(parse_rate(text)) << text;
  }
}

TEST(FormatDuration, LargestExactUnit) {
  EXPECT_EQ(format_duration(0ms), "0s");
  EXPECT_EQ(format_duration(1ms), "1ms");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(2s), "2s");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(5min), "5m");
  EXPECT_EQ(format_duration(25h), "25h");
  EXPECT_EQ(format_duration(30 * 24h), "30d");
}

TEST(FormatDuration, ParsesBack) {
  for (Duration d : {Duration(0), Duration(999), Duration(61000), Duration(INT64_MAX)}) {
    auto parsed = parse_duration(format_duration(d));
    ASSERT_TRUE(parsed) << format_duration(d);
    EXPECT_EQ(*parsed, d);
  }
}

TEST(ParseHostPort, Ipv4) {
  auto hp = parse_host_port("0.0.0.0:443");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "0.0.0.0");
  EXPECT_EQ(hp->port, 443);
}

TEST(ParseHostPort, BracketedIpv6) {
  auto any = parse_host_port("[::]:443");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->host, "::");
  EXPECT_EQ(any->port, 443);
  auto loopback = parse_host_port("[::1]:8443");
  ASSERT_TRUE(loopback);
  EXPECT_EQ(loopback->host, "::1");
  EXPECT_EQ(loopback->port, 8443);
}

TEST(ParseHostPort, HostName) {
  auto hp = parse_host_port("localhost:8000");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "localhost");
  EXPECT_EQ(hp->port, 8000);
  auto compose = parse_host_port("my_app-1.internal:65535");
  ASSERT_TRUE(compose);
  EXPECT_EQ(compose->host, "my_app-1.internal");
  EXPECT_EQ(compose->port, 65535);
}

TEST(ParseHostPort, AnyAddress) {
  auto star = parse_host_port("*:80");
  ASSERT_TRUE(star);
  EXPECT_EQ(star->host, "");
  EXPECT_EQ(star->port, 80);
  auto bare = parse_host_port(":1");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->host, "");
  EXPECT_EQ(bare->port, 1);
}

TEST(ParseHostPort, RejectsEmpty) {
  EXPECT_EQ(host_port_error(""), "empty address");
}

TEST(ParseHostPort, RejectsMissingPort) {
  EXPECT_EQ(host_port_error("localhost"), "missing port in \"localhost\" (expected host:port)");
  EXPECT_EQ(host_port_error("[::1]"), "missing port after \"]\" in \"[::1]\"");
  EXPECT_EQ(host_port_error("[::1]8443"), "missing port after \"]\" in \"[::1]8443\"");
}

TEST(ParseHostPort, RejectsBadPorts) {
  EXPECT_EQ(host_port_error("x:99999"), "invalid port in \"x:99999\"");
  EXPECT_EQ(host_port_error("x:0"), "invalid port in \"x:0\"");
  EXPECT_EQ(host_port_error("x:65536"), "invalid port in \"x:65536\"");
  EXPECT_EQ(host_port_error("x:"), "invalid port in \"x:\"");
  EXPECT_EQ(host_port_error("x:http"), "invalid port in \"x:http\"");
  EXPECT_EQ(host_port_error("x:+80"), "invalid port in \"x:+80\"");
  EXPECT_EQ(host_port_error("x:-1"), "invalid port in \"x:-1\"");
  EXPECT_EQ(host_port_error("x:80 "), "invalid port in \"x:80 \"");
  EXPECT_EQ(host_port_error("[::1]:"), "invalid port in \"[::1]:\"");
}

TEST(ParseHostPort, RejectsBadIpv6) {
  EXPECT_EQ(host_port_error("[::1:443"), "missing \"]\" in \"[::1:443\"");
  EXPECT_EQ(host_port_error("[]:443"), "invalid IPv6 address in \"[]:443\"");
  EXPECT_EQ(host_port_error("[example.com]:443"), "invalid IPv6 address in \"[example.com]:443\"");
  EXPECT_EQ(host_port_error("::1:443"),
            "IPv6 address must be in brackets, like [::1]:443, in \"::1:443\"");
}

TEST(ParseHostPort, RejectsBadHostCharacters) {
  EXPECT_EQ(host_port_error("my host:80"), "invalid host in \"my host:80\"");
  EXPECT_EQ(host_port_error("http://x:80"), "invalid host in \"http://x:80\"");
  EXPECT_EQ(host_port_error("**:80"), "invalid host in \"**:80\"");
}

}  // namespace
}  // namespace fd::config
