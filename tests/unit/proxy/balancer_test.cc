#include "proxy/balancer.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace fd::proxy {
namespace {

TEST(RoundRobin, WalksServersInOrder) {
  RoundRobin rr;
  std::vector<size_t> seen;
  for (int i = 0; i < 7; ++i) {
    seen.push_back(rr.next(3));
  }
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(RoundRobin, SharedAcrossThreadsStaysEven) {
  RoundRobin rr;
  std::vector<std::vector<int>> counts(4, std::vector<int>(3, 0));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 30000; ++i) {
        ++counts[t][rr.next(3)];
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  for (size_t s = 0; s < 3; ++s) {
    int total = 0;
    for (int t = 0; t < 4; ++t) {
      total += counts[t][s];
    }
    EXPECT_EQ(total, 40000);
  }
}

}  // namespace
}  // namespace fd::proxy
