#include "proxy/body_pace.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(BodyPace, FirstCheckIsWithinTheTimeout) {
  BodyPace pace;
  auto t0 = BodyPace::Clock::now();
  EXPECT_EQ(pace.start(t0, seconds(60), 1024), seconds(1));
  EXPECT_EQ(pace.start(t0, milliseconds(300), 1024), milliseconds(300));
  EXPECT_EQ(pace.start(t0, seconds(0), 1024), seconds(1));
}

TEST(BodyPace, SlowBodyIsCutAfterTheGrace) {
  BodyPace pace;
  auto t0 = BodyPace::Clock::now();
  pace.start(t0, seconds(60), 1024);
  milliseconds next;
  // 200 B/s: fine during the 5 s grace, cut at its end.
  for (int s = 1; s < 5; ++s) {
    pace.on_bytes(200);
    EXPECT_EQ(pace.check(t0 + seconds(s), false, &next), nullptr) << s;
    EXPECT_EQ(next, seconds(1));
  }
  pace.on_bytes(200);
  const char* reason = pace.check(t0 + seconds(5), false, &next);
  ASSERT_NE(reason, nullptr);
  EXPECT_STREQ(reason, "request body slower than body_min_rate");
  EXPECT_EQ(pace.bytes(), 1000u);
}

TEST(BodyPace, FastEnoughBodyPassesAndZeroRateIsNoMinimum) {
  BodyPace pace;
  auto t0 = BodyPace::Clock::now();
  milliseconds next;
  pace.start(t0, seconds(60), 1024);
  pace.on_bytes(6 * 1024);
  EXPECT_EQ(pace.check(t0 + seconds(6), false, &next), nullptr);
  pace.start(t0, seconds(0), 0);
  EXPECT_EQ(pace.check(t0 + seconds(600), false, &next), nullptr);
}

TEST(BodyPace, HeldBodyRestartsTheRateWindow) {
  BodyPace pace;
  auto t0 = BodyPace::Clock::now();
  milliseconds next;
  pace.start(t0, seconds(60), 1024);
  // frontdoor held the body back for 10 s: nothing came, and that is not the client's fault.
  EXPECT_EQ(pace.check(t0 + seconds(10), true, &next), nullptr);
  pace.on_bytes(5 * 1024);
  EXPECT_EQ(pace.check(t0 + seconds(15), false, &next), nullptr);
  EXPECT_NE(pace.check(t0 + seconds(21), false, &next), nullptr);
}

TEST(BodyPace, WholeBodyTimeout) {
  BodyPace pace;
  auto t0 = BodyPace::Clock::now();
  milliseconds next;
  pace.start(t0, seconds(2), 0);
  pace.on_bytes(1 << 20);
  EXPECT_EQ(pace.check(t0 + milliseconds(1500), false, &next), nullptr);
  EXPECT_EQ(next, milliseconds(500));
  EXPECT_STREQ(pace.check(t0 + seconds(2), false, &next),
               "request body not complete within body_timeout");
  EXPECT_EQ(pace.elapsed(t0 + seconds(2)), seconds(2));
}

}  // namespace
}  // namespace fd::proxy
