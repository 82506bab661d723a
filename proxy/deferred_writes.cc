#include "proxy/deferred_writes.h"

#include <algorithm>

namespace fd::proxy {

void DeferredWrites::defer(event* ev) {
  event_priority_set(ev, LAST);
  event_active(ev, EV_WRITE, 0);
  waiting_.push_back(ev);
}

void DeferredWrites::forget(event* ev) {
  // Deferred writes run in the order they were deferred, so the one asking is near the front.
  auto it = std::find(waiting_.begin(), waiting_.end(), ev);
  if (it == waiting_.end()) {
    return;
  }
  waiting_.erase(it);
  if (waiting_.empty()) {
    budget_used_ = 0;
  }
}

void DeferredWrites::promote() {
  for (event* ev : waiting_) {
    // An active event cannot change priority: take it out of the queue and put it back.
    event_del(ev);
    event_priority_set(ev, NORMAL);
    event_active(ev, EV_WRITE, 0);
  }
  waiting_.clear();
  budget_used_ = 0;
}

}  // namespace fd::proxy
