#include "proxy/balancer.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace fd::proxy {
namespace {

constexpr int64_t HUGE_ACTIVE = std::numeric_limits<int64_t>::max();

std::vector<Candidate> equal_servers(size_t n) { return std::vector<Candidate>(n); }

std::vector<Candidate> weighted(std::initializer_list<int> weights) {
  std::vector<Candidate> c;
  for (int w : weights) {
    c.push_back(Candidate{w, 0, true});
  }
  return c;
}

// Picks as letters ('a' for index 0), so a wrong sequence reads like the expected one.
std::string smooth_sequence(std::span<const Candidate> c, std::vector<int64_t>* current,
                            int picks) {
  std::string out;
  for (int i = 0; i < picks; ++i) {
    std::optional<size_t> p = pick_smooth_weighted(c, current);
    out += p ? static_cast<char>('a' + *p) : '-';
  }
  return out;
}

// --- round robin ---

TEST(PickRoundRobin, WalksServersInOrder) {
  RoundRobin rr;
  std::vector<Candidate> c = equal_servers(3);
  std::vector<size_t> seen;
  for (int i = 0; i < 7; ++i) {
    seen.push_back(pick_round_robin(c, rr.ticket()).value());
  }
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 0, 1, 2, 0}));
}

TEST(PickRoundRobin, SkipsIneligibleAndWraps) {
  std::vector<Candidate> c = equal_servers(4);
  c[1].eligible = false;
  c[3].eligible = false;
  EXPECT_EQ(pick_round_robin(c, 0), 0u);
  EXPECT_EQ(pick_round_robin(c, 1), 2u);
  EXPECT_EQ(pick_round_robin(c, 2), 2u);
  EXPECT_EQ(pick_round_robin(c, 3), 0u);  // wraps past the end
  EXPECT_EQ(pick_round_robin(c, 7), 0u);
  EXPECT_EQ(pick_round_robin(c, std::numeric_limits<uint64_t>::max()), 0u);  // max % 4 == 3
}

TEST(PickRoundRobin, NulloptWhenNoneEligibleOrEmpty) {
  std::vector<Candidate> c = equal_servers(3);
  for (Candidate& x : c) {
    x.eligible = false;
  }
  EXPECT_FALSE(pick_round_robin(c, 5).has_value());
  EXPECT_FALSE(pick_round_robin({}, 5).has_value());
}

TEST(PickRoundRobin, TicketsSharedAcrossThreadsStayEven) {
  RoundRobin rr;
  const std::vector<Candidate> c = equal_servers(3);
  constexpr int THREADS = 4;
  constexpr int PICKS = 30000;
  // One row per thread, so the threads share nothing but |rr|.
  std::vector<std::array<int, 3>> counts(THREADS, std::array<int, 3>{});
  std::vector<std::thread> threads;
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < PICKS; ++i) {
        ++counts[t][pick_round_robin(c, rr.ticket()).value()];
      }
    });
  }
  for (std::thread& th : threads) {
    th.join();
  }
  // Every ticket in [0, 120000) was handed out exactly once, so each server got a third.
  for (size_t s = 0; s < 3; ++s) {
    int total = 0;
    for (int t = 0; t < THREADS; ++t) {
      total += counts[t][s];
    }
    EXPECT_EQ(total, THREADS * PICKS / 3) << "server " << s;
  }
  EXPECT_EQ(rr.ticket(), static_cast<uint64_t>(THREADS * PICKS));
}

// --- smooth weighted ---

TEST(PickSmoothWeighted, FiveOneOneIsNginxSequence) {
  std::vector<Candidate> c = weighted({5, 1, 1});
  std::vector<int64_t> current;
  EXPECT_EQ(smooth_sequence(c, &current, 14), "aabacaaaabacaa");
  // A full cycle brings every running weight back to zero.
  EXPECT_EQ(current, (std::vector<int64_t>{0, 0, 0}));
}

TEST(PickSmoothWeighted, EqualWeightsRotate) {
  std::vector<Candidate> c = weighted({3, 3, 3, 3});
  std::vector<int64_t> current;
  EXPECT_EQ(smooth_sequence(c, &current, 10), "abcdabcdab");
}

TEST(PickSmoothWeighted, ResizesStaleState) {
  std::vector<Candidate> c = weighted({5, 1, 1});
  std::vector<int64_t> current{100, -7};  // left over from a two-server list
  EXPECT_EQ(smooth_sequence(c, &current, 7), "aabacaa");
  EXPECT_EQ(current.size(), 3u);
}

TEST(PickSmoothWeighted, SkipsIneligible) {
  std::vector<Candidate> c = weighted({5, 1, 1});
  c[0].eligible = false;
  std::vector<int64_t> current;
  EXPECT_EQ(smooth_sequence(c, &current, 6), "bcbcbc");
  EXPECT_EQ(current[0], 0);
}

TEST(PickSmoothWeighted, NulloptWhenNoneEligibleOrEmpty) {
  std::vector<Candidate> c = weighted({2, 1});
  c[0].eligible = false;
  c[1].eligible = false;
  std::vector<int64_t> current{3, -3};
  EXPECT_FALSE(pick_smooth_weighted(c, &current).has_value());
  EXPECT_EQ(current, (std::vector<int64_t>{3, -3}));  // nothing eligible, nothing moves

  std::vector<int64_t> empty_state{1, 2};
  EXPECT_FALSE(pick_smooth_weighted({}, &empty_state).has_value());
  EXPECT_TRUE(empty_state.empty());
}

TEST(PickSmoothWeighted, IneligibleMidSequenceKeepsOthersProportions) {
  std::vector<Candidate> c = weighted({5, 1, 1});
  std::vector<int64_t> current;
  ASSERT_EQ(smooth_sequence(c, &current, 4), "aaba");  // mid-cycle, c has credit waiting
  const int64_t c_credit = current[2];
  EXPECT_NE(c_credit, 0);

  c[2].eligible = false;
  std::array<int, 3> counts{};
  for (int i = 0; i < 600; ++i) {
    ++counts[pick_smooth_weighted(c, &current).value()];
  }
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0], 500, 1);  // 5 : 1 between the two left
  EXPECT_NEAR(counts[1], 100, 1);
  EXPECT_EQ(current[2], c_credit);

  // Back in: the three share 5 : 1 : 1 again.
  c[2].eligible = true;
  counts = {};
  for (int i = 0; i < 700; ++i) {
    ++counts[pick_smooth_weighted(c, &current).value()];
  }
  EXPECT_NEAR(counts[0], 500, 1);
  EXPECT_NEAR(counts[1], 100, 1);
  EXPECT_NEAR(counts[2], 100, 1);
}

// --- least conn ---

TEST(PickLeastConn, PicksFewestActive) {
  std::vector<Candidate> c = equal_servers(4);
  c[0].active = 5;
  c[1].active = 3;
  c[2].active = 1;
  c[3].active = 4;
  for (uint64_t ticket = 0; ticket < 8; ++ticket) {
    EXPECT_EQ(pick_least_conn(c, ticket), 2u) << "ticket " << ticket;
  }
}

TEST(PickLeastConn, TiesRotateWithTicket) {
  std::vector<Candidate> c = equal_servers(4);
  c[0].active = 2;
  c[1].active = 1;
  c[2].active = 2;
  c[3].active = 1;
  EXPECT_EQ(pick_least_conn(c, 0), 1u);
  EXPECT_EQ(pick_least_conn(c, 1), 1u);
  EXPECT_EQ(pick_least_conn(c, 2), 3u);
  EXPECT_EQ(pick_least_conn(c, 3), 3u);
  EXPECT_EQ(pick_least_conn(c, 4), 1u);

  // All idle: plain rotation.
  std::vector<Candidate> idle = equal_servers(3);
  std::vector<size_t> seen;
  for (uint64_t ticket = 0; ticket < 6; ++ticket) {
    seen.push_back(pick_least_conn(idle, ticket).value());
  }
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(PickLeastConn, RespectsWeights) {
  // 2 active on weight 2 is as loaded as 1 active on weight 1: a tie, broken by the ticket.
  std::vector<Candidate> c{{2, 2, true}, {1, 1, true}};
  EXPECT_EQ(pick_least_conn(c, 0), 0u);
  EXPECT_EQ(pick_least_conn(c, 1), 1u);

  // 3 active on weight 4 (0.75) beats 1 active on weight 1.
  std::vector<Candidate> d{{1, 1, true}, {4, 3, true}};
  EXPECT_EQ(pick_least_conn(d, 0), 1u);
  EXPECT_EQ(pick_least_conn(d, 1), 1u);
}

TEST(PickLeastConn, HugeActiveDoesNotOverflow) {
  // HUGE_ACTIVE * 1000 overflows int64; the comparison must still see server 0 as the busiest.
  std::vector<Candidate> c{{1, HUGE_ACTIVE, true}, {1000, HUGE_ACTIVE - 1, true}};
  EXPECT_EQ(pick_least_conn(c, 0), 1u);
  EXPECT_EQ(pick_least_conn(c, 1), 1u);
}

TEST(PickLeastConn, SkipsIneligible) {
  std::vector<Candidate> c = equal_servers(3);
  c[0].active = 9;
  c[1].eligible = false;  // idle but already tried
  c[2].active = 4;
  EXPECT_EQ(pick_least_conn(c, 0), 2u);
  EXPECT_EQ(pick_least_conn(c, 1), 2u);
  c[2].eligible = false;
  EXPECT_EQ(pick_least_conn(c, 2), 0u);
}

TEST(PickLeastConn, NulloptWhenNoneEligibleOrEmpty) {
  std::vector<Candidate> c = equal_servers(2);
  c[0].eligible = false;
  c[1].eligible = false;
  EXPECT_FALSE(pick_least_conn(c, 0).has_value());
  EXPECT_FALSE(pick_least_conn({}, 0).has_value());
}

// --- random two ---

TEST(PickRandomTwo, SingleEligibleIsReturned) {
  std::mt19937_64 rng(1);
  std::vector<Candidate> c = equal_servers(4);
  c[0].eligible = false;
  c[1].eligible = false;
  c[3].eligible = false;
  c[2].active = HUGE_ACTIVE;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(pick_random_two(c, &rng), 2u);
  }
}

TEST(PickRandomTwo, NulloptWhenNoneEligibleOrEmpty) {
  std::mt19937_64 rng(1);
  std::vector<Candidate> c = equal_servers(3);
  for (Candidate& x : c) {
    x.eligible = false;
  }
  EXPECT_FALSE(pick_random_two(c, &rng).has_value());
  EXPECT_FALSE(pick_random_two({}, &rng).has_value());
}

TEST(PickRandomTwo, SkipsIneligible) {
  std::mt19937_64 rng(7);
  std::vector<Candidate> c = equal_servers(5);
  c[0].eligible = false;
  c[2].eligible = false;
  c[4].eligible = false;
  std::array<int, 5> counts{};
  for (int i = 0; i < 2000; ++i) {
    ++counts[pick_random_two(c, &rng).value()];
  }
  EXPECT_EQ(counts[0] + counts[2] + counts[4], 0);
  EXPECT_GT(counts[1], 800);  // idle ties go to whichever was drawn first: about half each
  EXPECT_GT(counts[3], 800);
}

TEST(PickRandomTwo, TwoEligibleLighterAlwaysWins) {
  std::mt19937_64 rng(3);
  // Both are always drawn, so the lighter one wins every time: 3 per unit of weight vs 2.
  std::vector<Candidate> c{{1, 3, true}, {3, 6, true}};
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(pick_random_two(c, &rng), 1u);
  }
}

TEST(PickRandomTwo, EqualIdleServersRoughlyUniform) {
  std::mt19937_64 rng(20240601);
  const std::vector<Candidate> c = equal_servers(3);
  constexpr int PICKS = 30000;
  std::array<int, 3> counts{};
  for (int i = 0; i < PICKS; ++i) {
    ++counts[pick_random_two(c, &rng).value()];
  }
  double chi2 = 0;
  const double expected = PICKS / 3.0;
  for (int n : counts) {
    chi2 += (n - expected) * (n - expected) / expected;
  }
  // 2 degrees of freedom: 13.8 is the p = 0.001 critical value.
  EXPECT_LT(chi2, 13.8) << counts[0] << " " << counts[1] << " " << counts[2];
}

TEST(PickRandomTwo, BusyServerNeverBeatsIdleOne) {
  std::mt19937_64 rng(99);
  // Any pair it is drawn in includes an idle server, which is strictly lighter. HUGE_ACTIVE times
  // the idle weight of 2 would overflow 64 bits and make the busy server look lightest.
  std::vector<Candidate> c{{2, 0, true}, {1, HUGE_ACTIVE, true}, {2, 0, true}};
  constexpr int PICKS = 30000;
  std::array<int, 3> counts{};
  for (int i = 0; i < PICKS; ++i) {
    ++counts[pick_random_two(c, &rng).value()];
  }
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[0] + counts[2], PICKS);
  EXPECT_GT(counts[0], PICKS / 3);  // the idle pair still shares the load
  EXPECT_GT(counts[2], PICKS / 3);
}

}  // namespace
}  // namespace fd::proxy
