#include "proxy/stats.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace fd::proxy {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using Codes = std::vector<std::pair<int, uint64_t>>;

TEST(StatusCounters, EmptySnapshotIsEmpty) {
  StatusCounters c;
  EXPECT_TRUE(c.snapshot().empty());
}

TEST(StatusCounters, NonZeroCodesAscending) {
  StatusCounters c;
  c.add(503);
  c.add(200);
  c.add(200);
  c.add(100);
  c.add(599);
  c.add(404);
  EXPECT_EQ(c.snapshot(), (Codes{{100, 1}, {200, 2}, {404, 1}, {503, 1}, {599, 1}}));
}

TEST(StatusCounters, OutOfRangeCodesShareCodeZero) {
  StatusCounters c;
  c.add(99);
  c.add(600);
  c.add(0);
  c.add(-1);
  c.add(1000);
  c.add(204);
  EXPECT_EQ(c.snapshot(), (Codes{{0, 5}, {204, 1}}));
}

TEST(StatusCounters, FourThreadsLoseNothing) {
  StatusCounters c;
  constexpr int PER_THREAD = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < PER_THREAD; ++i) {
        c.add(200);
        c.add(t % 2 == 0 ? 502 : 700);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(c.snapshot(),
            (Codes{{0, 2 * PER_THREAD}, {200, 4 * PER_THREAD}, {502, 2 * PER_THREAD}}));
}

TEST(LatencyHistogram, EmptyView) {
  LatencyHistogram h;
  HistogramView v = h.view();
  ASSERT_EQ(v.bounds.size(), 13u);
  EXPECT_EQ(v.bounds.front(), 0.001);
  EXPECT_EQ(v.bounds.back(), 10.0);
  ASSERT_EQ(v.buckets.size(), 14u);
  for (uint64_t b : v.buckets) {
    EXPECT_EQ(b, 0u);
  }
  EXPECT_EQ(v.count, 0u);
  EXPECT_EQ(v.sum_seconds, 0.0);
}

TEST(LatencyHistogram, BucketsAreCumulativeAndBoundsInclusive) {
  LatencyHistogram h;
  h.observe(nanoseconds(0));          // le 0.001
  h.observe(milliseconds(1));         // exactly on 0.001: le 0.001
  h.observe(nanoseconds(1'000'001));  // just over: le 0.0025
  h.observe(milliseconds(30));        // le 0.05
  h.observe(milliseconds(30));        // le 0.05
  h.observe(seconds(1));              // le 1
  h.observe(seconds(10));             // le 10
  h.observe(seconds(11));             // +Inf only
  h.observe(nanoseconds(-5));         // clamped to 0: le 0.001
  HistogramView v = h.view();
  //                                   .001 .0025 .005 .01 .025 .05 .1 .25 .5 1  2.5 5  10 +Inf
  EXPECT_EQ(v.buckets, (std::vector<uint64_t>{3, 4, 4, 4, 4, 6, 6, 6, 6, 7, 7, 7, 8, 9}));
  EXPECT_EQ(v.count, 9u);
  EXPECT_DOUBLE_EQ(v.sum_seconds, 0.001 + 0.001000001 + 0.060 + 1 + 10 + 11);
}

TEST(LatencyHistogram, FourThreadsCountMatchesInfBucket) {
  LatencyHistogram h;
  constexpr int PER_THREAD = 50'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < PER_THREAD; ++i) {
        h.observe(milliseconds(t * 3));  // 0, 3, 6, 9 ms
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  HistogramView v = h.view();
  EXPECT_EQ(v.count, 4u * PER_THREAD);
  EXPECT_EQ(v.buckets.back(), v.count);
  EXPECT_EQ(v.buckets[0], 1u * PER_THREAD);  // le 0.001: the 0 ms thread
  EXPECT_EQ(v.buckets[2], 2u * PER_THREAD);  // le 0.005: + 3 ms
  EXPECT_EQ(v.buckets[3], 4u * PER_THREAD);  // le 0.01: + 6 and 9 ms
  EXPECT_DOUBLE_EQ(v.sum_seconds, PER_THREAD * 0.018);
}

}  // namespace
}  // namespace fd::proxy
