#pragma once

#include <atomic>
#include <cstdint>

#include "proxy/stats.h"

namespace fd::proxy {

// Process-wide counters the workers update and the admin endpoint reads. Owned by the Server;
// outlives every worker.
struct ProxyStats {
  std::atomic<uint32_t> connections{0};  // accepted client connections now open
  StatusCounters unrouted;               // answers with no upstream (404, 400...)
  LatencyHistogram request_duration;
};

}  // namespace fd::proxy
