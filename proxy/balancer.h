#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace fd::proxy {

// Round-robin position shared by all workers of a process: one relaxed atomic increment per
// pick, so consecutive requests walk the servers in order whichever worker takes them.
class RoundRobin {
 public:
  uint64_t ticket() { return counter_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> counter_{0};
};

// What a balancer knows about one server at the moment of a pick.
struct Candidate {
  int weight = 1;        // >= 1
  int64_t active = 0;    // requests in flight to it
  bool eligible = true;  // available (health) and not yet tried by this request
};

// The pickers are pure functions of their inputs: no sockets, no clock. Each returns the index
// of the chosen candidate, or nullopt when no candidate is eligible.

// The first eligible candidate at or after |ticket| % n, wrapping.
std::optional<size_t> pick_round_robin(std::span<const Candidate> c, uint64_t ticket);

// nginx's smooth weighted round-robin over the eligible candidates. |current| holds one running
// weight per candidate; the caller keeps it between picks and resets it (size n, zeros) when the
// server list changes. Weights 5/1/1 give a a b a c a a, repeating.
std::optional<size_t> pick_smooth_weighted(std::span<const Candidate> c,
                                           std::vector<int64_t>* current);

// Fewest active requests per unit of weight; among equals, the first at or after
// |ticket| % n, so ties rotate.
std::optional<size_t> pick_least_conn(std::span<const Candidate> c, uint64_t ticket);

// Power of two choices: two distinct eligible candidates drawn at random, the one with fewer
// active requests per unit of weight wins (the first drawn on a tie). One eligible: that one.
std::optional<size_t> pick_random_two(std::span<const Candidate> c, std::mt19937_64* rng);

}  // namespace fd::proxy
