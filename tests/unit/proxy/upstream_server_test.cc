#include "proxy/upstream_server.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

config::HealthCheck check_2_3() {
  config::HealthCheck c;
  c.healthy_after = 2;
  c.unhealthy_after = 3;
  return c;
}

TEST(HealthRule, FirstResultDecidesAtOnce) {
  UpstreamServer up;
  EXPECT_EQ(up.record_check(true, "", check_2_3(), "t"), Health::unknown);
  EXPECT_EQ(up.health.load(), Health::up);
  UpstreamServer down;
  down.record_check(false, "refused", check_2_3(), "t");
  EXPECT_EQ(down.health.load(), Health::down);
  EXPECT_EQ(down.last_check_result, "fail: refused");
  EXPECT_EQ(down.last_check_time, "t");
}

TEST(HealthRule, UnhealthyAfterAndHealthyAfter) {
  UpstreamServer s;
  auto c = check_2_3();
  s.record_check(true, "", c, "t");
  s.record_check(false, "x", c, "t");
  s.record_check(false, "x", c, "t");
  EXPECT_EQ(s.health.load(), Health::up);  // two failures of three
  s.record_check(true, "", c, "t");        // resets the failure streak
  s.record_check(false, "x", c, "t");
  s.record_check(false, "x", c, "t");
  EXPECT_EQ(s.health.load(), Health::up);
  s.record_check(false, "x", c, "t");
  EXPECT_EQ(s.health.load(), Health::down);
  EXPECT_EQ(s.consecutive_failures, 3u);
  s.record_check(true, "", c, "t");
  EXPECT_EQ(s.health.load(), Health::down);
  s.record_check(true, "", c, "t");
  EXPECT_EQ(s.health.load(), Health::up);
  EXPECT_EQ(s.consecutive_passes, 2u);
}

TEST(HealthRule, ComingBackClearsPassiveFailures) {
  UpstreamServer s;
  config::Upstream settings;
  settings.max_fails = 1;
  settings.fail_timeout = std::chrono::milliseconds(10000);
  EXPECT_TRUE(s.record_failure(1000, settings));
  EXPECT_FALSE(s.available(2000));
  s.record_check(false, "x", check_2_3(), "t");
  s.record_check(true, "", check_2_3(), "t");
  s.record_check(true, "", check_2_3(), "t");
  EXPECT_TRUE(s.available(2000));
}

TEST(PassiveFailures, MaxFailsWithinWindow) {
  UpstreamServer s;
  config::Upstream settings;
  settings.max_fails = 3;
  settings.fail_window = std::chrono::milliseconds(10000);
  settings.fail_timeout = std::chrono::milliseconds(5000);
  EXPECT_FALSE(s.record_failure(0, settings));
  EXPECT_FALSE(s.record_failure(4000, settings));
  // The first failure has left the window by now: only two count.
  EXPECT_FALSE(s.record_failure(10500, settings));
  EXPECT_TRUE(s.available(10500));
  EXPECT_TRUE(s.record_failure(11000, settings));
  EXPECT_FALSE(s.available(11000));
  EXPECT_TRUE(s.passive_down(15999));
  EXPECT_TRUE(s.available(16000));
  EXPECT_EQ(s.failures.load(), 4u);
}

TEST(PassiveFailures, ZeroMaxFailsDisables) {
  UpstreamServer s;
  config::Upstream settings;
  settings.max_fails = 0;
  EXPECT_FALSE(s.record_failure(0, settings));
  EXPECT_TRUE(s.available(0));
}

TEST(Availability, RemovedAndDownServersTakeNoRequests) {
  UpstreamServer s;
  EXPECT_TRUE(s.available(0));
  s.health = Health::down;
  EXPECT_FALSE(s.available(0));
  s.health = Health::up;
  s.removed = true;
  EXPECT_FALSE(s.available(0));
}

}  // namespace
}  // namespace fd::proxy
