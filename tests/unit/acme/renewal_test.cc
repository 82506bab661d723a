#include "acme/renewal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <vector>

namespace fd::acme {
namespace {

using namespace std::chrono_literals;
using std::chrono::seconds;

constexpr auto DAY = 24h;

// 2025-01-01T00:00:00Z: renewal_time is a pure function, so a fixed instant stands in for a
// fake clock.
const Clock::time_point ISSUED = Clock::from_time_t(1735689600);

Clock::time_point auto_renewal(Clock::duration lifetime) {
  return renewal_time(ISSUED, ISSUED + lifetime, std::nullopt);
}

TEST(RenewalTime, NinetyDayCertificateRenewsWithAThirdLeft) {
  EXPECT_EQ(auto_renewal(90 * DAY), ISSUED + 60 * DAY);
}

TEST(RenewalTime, SixDayCertificateRenewsAtHalfLife) {
  EXPECT_EQ(auto_renewal(6 * DAY), ISSUED + 3 * DAY);
}

TEST(RenewalTime, TenDaysStillCountsAsShortLived) {
  EXPECT_EQ(auto_renewal(10 * DAY), ISSUED + 5 * DAY);
}

TEST(RenewalTime, ElevenDayCertificateRenewsWithAThirdLeft) {
  EXPECT_EQ(auto_renewal(11 * DAY), ISSUED + 11 * DAY * 2 / 3);
  EXPECT_EQ(auto_renewal(11 * DAY), ISSUED + 7 * DAY + 8h);
}

TEST(RenewalTime, JustOverTenDaysUsesTwoThirds) {
  const Clock::duration lifetime = 10 * DAY + 1s;
  EXPECT_EQ(auto_renewal(lifetime), ISSUED + (lifetime - lifetime / 3));
}

TEST(RenewalTime, PebbleStyleLifetimeEndingOneSecondEarly) {
  // Pebble issues notAfter = notBefore + period - 1 s.
  const Clock::duration lifetime = 90 * DAY - 1s;
  EXPECT_EQ(auto_renewal(lifetime), ISSUED + (lifetime - lifetime / 3));
  EXPECT_LT(auto_renewal(lifetime), ISSUED + 60 * DAY);
  EXPECT_GT(auto_renewal(lifetime), ISSUED + 60 * DAY - 1s);
}

TEST(RenewalTime, FixedDurationBeforeExpiry) {
  const auto not_after = ISSUED + 90 * DAY;
  EXPECT_EQ(renewal_time(ISSUED, not_after, seconds(30 * DAY)), not_after - 30 * DAY);
  EXPECT_EQ(renewal_time(ISSUED, not_after, seconds(1h)), not_after - 1h);
  // A fixed duration overrides the short-lifetime rule.
  EXPECT_EQ(renewal_time(ISSUED, ISSUED + 6 * DAY, seconds(1 * DAY)), ISSUED + 5 * DAY);
}

TEST(RenewalTime, BeforeExpiryAsLongAsTheLifetimeRenewsAtOnce) {
  const auto not_after = ISSUED + 6 * DAY;
  EXPECT_EQ(renewal_time(ISSUED, not_after, seconds(6 * DAY)), ISSUED);
  EXPECT_EQ(renewal_time(ISSUED, not_after, seconds(30 * DAY)), ISSUED);
  // Far beyond what the nanosecond clock can represent: no overflow.
  EXPECT_EQ(renewal_time(ISSUED, not_after, seconds(INT64_MAX)), ISSUED);
}

TEST(RenewalTime, BeforeExpiryJustShorterThanTheLifetime) {
  const auto not_after = ISSUED + 6 * DAY;
  EXPECT_EQ(renewal_time(ISSUED, not_after, seconds(6 * DAY - 1s)), ISSUED + 1s);
}

TEST(RenewalTime, ZeroBeforeExpiryRenewsAtExpiry) {
  const auto not_after = ISSUED + 90 * DAY;
  EXPECT_EQ(renewal_time(ISSUED, not_after, seconds(0)), not_after);
}

TEST(RenewalTime, EmptyOrInvertedValidityRenewsAtOnce) {
  EXPECT_EQ(renewal_time(ISSUED, ISSUED, std::nullopt), ISSUED);
  EXPECT_EQ(renewal_time(ISSUED, ISSUED - 1h, std::nullopt), ISSUED);
  EXPECT_EQ(renewal_time(ISSUED, ISSUED - 1h, seconds(60)), ISSUED);
}

TEST(PickInWindow, EmptyWindowGivesStart) {
  std::mt19937_64 rng(1);
  EXPECT_EQ(pick_in_window(ISSUED, ISSUED, &rng), ISSUED);
  EXPECT_EQ(pick_in_window(ISSUED, ISSUED - 1h, &rng), ISSUED);
  // A one-tick window has a single value.
  EXPECT_EQ(pick_in_window(ISSUED, ISSUED + Clock::duration(1), &rng), ISSUED);
}

TEST(PickInWindow, UniformWithinTheWindow) {
  std::mt19937_64 rng(42);
  const auto start = ISSUED + 60 * DAY;
  const auto end = start + 2 * DAY;
  constexpr int DRAWS = 100000;
  constexpr int BUCKETS = 10;
  std::vector<int> counts(BUCKETS);
  Clock::time_point lowest = end;
  Clock::time_point highest = start;
  for (int i = 0; i < DRAWS; ++i) {
    const auto t = pick_in_window(start, end, &rng);
    ASSERT_GE(t, start);
    ASSERT_LT(t, end);
    lowest = std::min(lowest, t);
    highest = std::max(highest, t);
    ++counts[static_cast<size_t>((t - start) * BUCKETS / (end - start))];
  }
  // Expected 10000 per bucket; the standard deviation is about 95, so 5% is over 5 sigma.
  for (int count : counts) {
    EXPECT_NEAR(count, DRAWS / BUCKETS, DRAWS / BUCKETS / 20);
  }
  // The draws reach both ends of the window.
  EXPECT_LT(lowest - start, 1h);
  EXPECT_LT(end - highest, 1h);
}

TEST(PickInWindow, NullGeneratorStillPicksInsideTheWindow) {
  const auto end = ISSUED + 1h;
  for (int i = 0; i < 100; ++i) {
    const auto t = pick_in_window(ISSUED, end, nullptr);
    EXPECT_GE(t, ISSUED);
    EXPECT_LT(t, end);
  }
}

seconds nominal_backoff(unsigned failures) {
  return std::min(seconds(60) * (int64_t{1} << std::min(failures - 1, 20u)), seconds(6h));
}

seconds median_backoff(unsigned failures, std::mt19937_64* rng) {
  std::vector<seconds> draws;
  for (int i = 0; i < 2001; ++i) {
    draws.push_back(backoff(failures, rng));
  }
  std::nth_element(draws.begin(), draws.begin() + 1000, draws.end());
  return draws[1000];
}

TEST(Backoff, FirstFailureWaitsAboutAMinute) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; ++i) {
    const seconds wait = backoff(1, &rng);
    EXPECT_GE(wait, 54s);
    EXPECT_LE(wait, 66s);
  }
}

TEST(Backoff, ZeroFailuresCountsAsOne) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100; ++i) {
    const seconds wait = backoff(0, &rng);
    EXPECT_GE(wait, 54s);
    EXPECT_LE(wait, 66s);
  }
}

TEST(Backoff, DoublesUpToTheCapWithTenPercentJitter) {
  std::mt19937_64 rng(11);
  for (unsigned failures = 1; failures <= 40; ++failures) {
    const seconds nominal = nominal_backoff(failures);
    seconds lowest = seconds::max();
    seconds highest = seconds::min();
    for (int i = 0; i < 500; ++i) {
      const seconds wait = backoff(failures, &rng);
      lowest = std::min(lowest, wait);
      highest = std::max(highest, wait);
    }
    EXPECT_GE(lowest, nominal - nominal / 10) << failures;
    EXPECT_LE(highest, nominal + nominal / 10) << failures;
    // The jitter is real and goes both ways.
    EXPECT_LT(lowest, nominal) << failures;
    EXPECT_GT(highest, nominal) << failures;
  }
  EXPECT_EQ(nominal_backoff(2), 120s);
  EXPECT_EQ(nominal_backoff(9), 256min);  // 4 h 16 min; twice that is past the cap
  EXPECT_EQ(nominal_backoff(10), 6h);
}

TEST(Backoff, MediansDoubleThenStayAtTheCap) {
  std::mt19937_64 rng(13);
  seconds previous = seconds::zero();
  for (unsigned failures = 1; failures <= 14; ++failures) {
    const seconds median = median_backoff(failures, &rng);
    if (failures == 1 || nominal_backoff(failures) > nominal_backoff(failures - 1)) {
      EXPECT_GT(median, previous) << failures;
    } else {
      // At the cap the medians are equal but for sampling noise.
      EXPECT_NEAR(median.count(), previous.count(), previous.count() / 50) << failures;
    }
    // Within 2% of the nominal value.
    EXPECT_NEAR(median.count(), nominal_backoff(failures).count(),
                nominal_backoff(failures).count() / 50)
        << failures;
    previous = median;
  }
}

TEST(Backoff, HugeFailureCountsStayCapped) {
  std::mt19937_64 rng(17);
  for (unsigned failures : {64u, 65u, 1000u, UINT_MAX}) {
    const seconds wait = backoff(failures, &rng);
    EXPECT_GE(wait, 6h - 36min) << failures;
    EXPECT_LE(wait, 6h + 36min) << failures;
  }
}

}  // namespace
}  // namespace fd::acme
