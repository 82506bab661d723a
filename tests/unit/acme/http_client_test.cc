#include "acme/http_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>

namespace fd::acme {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

// 2015-10-21T07:28:00Z, the date of RFC 9110's Retry-After example.
system_clock::time_point example_date() {
  return system_clock::from_time_t(1445412480);
}

TEST(ParseRetryAfterTest, DeltaSeconds) {
  auto now = system_clock::now();
  EXPECT_EQ(parse_retry_after("120", now), seconds(120));
  EXPECT_EQ(parse_retry_after("0", now), seconds(0));
  EXPECT_EQ(parse_retry_after(" 5 ", now), seconds(5));
  EXPECT_EQ(parse_retry_after("86400", now), seconds(86400));
}

TEST(ParseRetryAfterTest, HttpDate) {
  auto now = example_date() - seconds(90);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), seconds(90));
  // The obsolete forms recipients must still accept (RFC 9110 5.6.7).
  EXPECT_EQ(parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now), seconds(90));
  EXPECT_EQ(parse_retry_after("Wed Oct 21 07:28:00 2015", now), seconds(90));
  // A fraction of a second before the date still waits the whole second.
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
                              example_date() - std::chrono::milliseconds(1500)),
            seconds(2));
}

TEST(ParseRetryAfterTest, DateBeyondTheClockIsClamped) {
  // system_clock ends in 2262; a date in 9999 must not overflow it (UBSan checks).
  auto wait = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", example_date());
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, seconds(7258118400 - 1445412480));  // until 2200-01-01
}

TEST(ParseRetryAfterTest, PastDateIsZero) {
  auto now = example_date() + seconds(3600);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), seconds(0));
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", example_date()), seconds(0));
}

TEST(ParseRetryAfterTest, Garbage) {
  auto now = system_clock::now();
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("   ", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-5", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("1.5", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("10s", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("99999999999999999999", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("Wed, 21 Foo 2015 07:28:00 GMT", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 25:28:00 GMT", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("2015-10-21T07:28:00Z", now), std::nullopt);
}

TEST(HttpResponseTest, HeaderGivesTheFirstValue) {
  HttpResponse response;
  response.headers.emplace("link", "<https://ca.test/dir>;rel=\"index\"");
  response.headers.emplace("replay-nonce", "abc");
  response.headers.emplace("link", "<https://ca.test/authz/1>;rel=\"up\"");
  EXPECT_EQ(response.header("link"), "<https://ca.test/dir>;rel=\"index\"");
  EXPECT_EQ(response.headers.count("link"), 2u);
  EXPECT_EQ(response.header("replay-nonce"), "abc");
  EXPECT_EQ(response.header("location"), std::nullopt);
  EXPECT_EQ(response.header("replay"), std::nullopt);
}

}  // namespace
}  // namespace fd::acme
