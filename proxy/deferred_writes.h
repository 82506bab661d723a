#pragma once

#include <event2/event.h>

#include <cstddef>
#include <vector>

namespace fd::proxy {

// While a loop is busy, writes to upstreams wait until it has taken in everything that is
// ready. libevent runs its lowest priority only after a poll that brings nothing new, so a
// backend then gets the requests of many clients in one burst and wakes once for them instead
// of once per pass; on a shared CPU that leaves more of it to the clients and the backends.
// A loop that is not busy writes at the end of the pass as before, because there waiting only
// adds a poll and a delay. Replies to clients never wait: holding them back gains nothing.
//
// A waiting write goes back to the normal priority after BUDGET more reads, which bounds the
// wait on a loop that never runs dry.
class DeferredWrites {
 public:
  // libevent gives new events the middle one of PRIORITIES; waiting writes take the lowest.
  static constexpr int PRIORITIES = 3;
  static constexpr int NORMAL = 1;
  static constexpr int LAST = 2;
  static_assert(PRIORITIES / 2 == NORMAL, "libevent's default priority is the normal one");
  // Busy: this many reads between two times the loop ran dry. A handful of clients, each
  // waiting for its answer, stays below it.
  static constexpr int BUSY_READS = 8;
  // Measured at 64 clients, 4 or 16 promote the writes before the loop runs dry and lose the
  // gain.
  static constexpr int BUDGET = 64;

  DeferredWrites() = default;
  DeferredWrites(const DeferredWrites&) = delete;
  DeferredWrites& operator=(const DeferredWrites&) = delete;

  // Whether a write should wait now: the loop is busy, or was until it last ran dry.
  bool busy() const { return busy_ || reads_ >= BUSY_READS; }
  // Activates |ev| (neither pending nor active) with EV_WRITE at the lowest priority.
  void defer(event* ev);
  // |ev| ran, was deleted or is being freed. Harmless for an event that is not waiting.
  void forget(event* ev);
  // A socket read callback ran.
  void note_read() {
    ++reads_;
    if (!waiting_.empty() && ++budget_used_ >= BUDGET) {
      promote();
    }
  }
  // Every active callback has run, the waiting writes last.
  void ran_dry() {
    busy_ = reads_ >= BUSY_READS;
    reads_ = 0;
  }

  size_t waiting() const { return waiting_.size(); }

 private:
  void promote();

  std::vector<event*> waiting_;
  int budget_used_ = 0;  // reads since the oldest waiting write was deferred
  int reads_ = 0;        // since the loop last ran dry
  bool busy_ = false;
};

}  // namespace fd::proxy
