#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace fd::proxy {

// Round-robin selection shared by all workers of a process: one relaxed atomic increment per
// pick, so consecutive requests walk the servers in order whichever worker takes them.
class RoundRobin {
 public:
  // Index in [0, n) of the next server; n must be > 0.
  size_t next(size_t n) { return static_cast<size_t>(counter_.fetch_add(1, std::memory_order_relaxed) % n); }

 private:
  std::atomic<uint64_t> counter_{0};
};

}  // namespace fd::proxy
