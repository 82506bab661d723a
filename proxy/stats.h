#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "proxy/admin_view.h"

namespace fd::proxy {

// Counts responses by HTTP status code without locks: one relaxed atomic per code 100..599 and
// one shared slot for anything else. Workers write, the main thread reads; neither waits.
// Not copyable or movable (it holds atomics); keep it where its writers can reach it for as long
// as they run (an UpstreamServer, an upstream group, the server itself).
class StatusCounters {
 public:
  StatusCounters() = default;
  StatusCounters(const StatusCounters&) = delete;
  StatusCounters& operator=(const StatusCounters&) = delete;

  // Counts one response with status |code|. Codes outside 100..599 all go to one slot that
  // snapshot() reports as code 0. Thread-safe and wait-free; called by the worker threads.
  void add(int code);

  // Returns (code, count) for every code counted at least once, ascending by code (so the
  // "other" slot, code 0, comes first). Each count is read atomically but the counts together are
  // not one instant. Thread-safe; called by the main thread when it builds an AdminView.
  std::vector<std::pair<int, uint64_t>> snapshot() const;

 private:
  static constexpr int MIN_CODE = 100;
  static constexpr int MAX_CODE = 599;
  static constexpr size_t OTHER_SLOT = MAX_CODE - MIN_CODE + 1;

  std::array<std::atomic<uint64_t>, OTHER_SLOT + 1> counts_{};
};

// A latency histogram with Prometheus' default buckets, without locks. Each observation does two
// relaxed increments: its own (non-cumulative) bucket and the sum in nanoseconds; the count is the
// total over the buckets, so a view's +Inf bucket always equals its count (the exposition format
// requires it). Not copyable or movable. Workers write, the main thread reads.
class LatencyHistogram {
 public:
  // Upper bounds of the buckets in seconds, ascending, without +Inf (the client libraries'
  // DefBuckets). A duration equal to a bound counts in that bound's bucket ("le").
  static constexpr std::array<double, 13> BOUNDS_SECONDS = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Records one duration |d|; a negative one counts as zero. Thread-safe and wait-free; called by
  // the worker threads.
  void observe(std::chrono::nanoseconds d);

  // Returns the buckets as cumulative counts (one per bound, then +Inf), the count and the sum in
  // seconds, as HistogramView describes. The sum is read apart from the buckets, so under load it
  // may include an observation the buckets do not (or the reverse). Thread-safe; called by the
  // main thread.
  HistogramView view() const;

 private:
  // Non-cumulative: buckets_[i] counts durations in (bound[i-1], bound[i]]; the last is +Inf.
  std::array<std::atomic<uint64_t>, BOUNDS_SECONDS.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace fd::proxy
