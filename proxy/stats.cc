#include "proxy/stats.h"

#include <algorithm>

namespace fd::proxy {

namespace {

// The bounds in whole nanoseconds, so that placing a duration is an exact integer comparison
// (0.001 s is not exact in binary; 1'000'000 ns is).
constexpr std::array<int64_t, 13> BOUNDS_NS = {
    1'000'000,     2'500'000,     5'000'000,     10'000'000,  25'000'000,
    50'000'000,    100'000'000,   250'000'000,   500'000'000, 1'000'000'000,
    2'500'000'000, 5'000'000'000, 10'000'000'000};

static_assert(BOUNDS_NS.size() == LatencyHistogram::BOUNDS_SECONDS.size());

constexpr bool bounds_agree() {
  for (size_t i = 0; i < BOUNDS_NS.size(); ++i) {
    if (static_cast<double>(BOUNDS_NS[i]) / 1e9 != LatencyHistogram::BOUNDS_SECONDS[i]) {
      return false;
    }
  }
  return true;
}
static_assert(bounds_agree(), "BOUNDS_NS must match BOUNDS_SECONDS");

}  // namespace

void StatusCounters::add(int code) {
  size_t slot =
      (code >= MIN_CODE && code <= MAX_CODE) ? static_cast<size_t>(code - MIN_CODE) : OTHER_SLOT;
  counts_[slot].fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::pair<int, uint64_t>> StatusCounters::snapshot() const {
  std::vector<std::pair<int, uint64_t>> out;
  uint64_t other = counts_[OTHER_SLOT].load(std::memory_order_relaxed);
  if (other != 0) {
    out.emplace_back(0, other);
  }
  for (size_t i = 0; i < OTHER_SLOT; ++i) {
    uint64_t n = counts_[i].load(std::memory_order_relaxed);
    if (n != 0) {
      out.emplace_back(MIN_CODE + static_cast<int>(i), n);
    }
  }
  return out;
}

void LatencyHistogram::observe(std::chrono::nanoseconds d) {
  int64_t ns = std::max<int64_t>(d.count(), 0);
  // First bound >= ns; past the end is the +Inf bucket.
  size_t i = static_cast<size_t>(std::lower_bound(BOUNDS_NS.begin(), BOUNDS_NS.end(), ns) -
                                 BOUNDS_NS.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

HistogramView LatencyHistogram::view() const {
  HistogramView v;
  v.bounds.assign(BOUNDS_SECONDS.begin(), BOUNDS_SECONDS.end());
  v.buckets.reserve(buckets_.size());
  uint64_t running = 0;
  for (const auto& b : buckets_) {
    running += b.load(std::memory_order_relaxed);
    v.buckets.push_back(running);
  }
  v.count = running;
  v.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return v;
}

}  // namespace fd::proxy
