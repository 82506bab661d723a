#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/stats.h"

namespace fd::proxy {

enum class Health : uint8_t {
  unknown,  // no active check result yet (or no active checks): receives traffic
  up,
  down,
};

const char* to_string(Health h);

// Milliseconds on the steady clock; what the availability fields hold.
int64_t steady_now_ms();

// One resolved upstream address with its health and counters. Shared (shared_ptr) by the
// server lists that include it and by the pools holding connections to it; it survives
// re-resolution for as long as its address keeps resolving, so its state does too.
//
// Threads: workers read |health|, |passive_down_until_ms| and |removed| on every pick and
// update the counters; the main thread (health checker, resolver, admin) writes health and
// the check bookkeeping, which only the main thread reads.
struct UpstreamServer {
  std::string name;     // as configured, "app:8000"; Host of the health checks
  std::string address;  // numeric "ip:port" ("[v6]:port"), as logged and reported
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int weight = 1;

  std::atomic<Health> health{Health::unknown};
  std::atomic<int64_t> passive_down_until_ms{0};
  std::atomic<bool> removed{false};  // no longer resolved: gets no new requests

  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> failures{0};
  StatusCounters responses;

  // Main thread only: active check bookkeeping for /status.
  uint32_t consecutive_passes = 0;
  uint32_t consecutive_failures = 0;
  std::string last_check_time;
  std::string last_check_result;

  // True when the server may take a new request now.
  bool available(int64_t now_ms) const {
    return !removed.load(std::memory_order_relaxed) &&
           health.load(std::memory_order_relaxed) != Health::down &&
           passive_down_until_ms.load(std::memory_order_relaxed) <= now_ms;
  }
  bool passive_down(int64_t now_ms) const {
    return passive_down_until_ms.load(std::memory_order_relaxed) > now_ms;
  }

  // Counts a connect error, reset or timeout before any response byte; after |max_fails|
  // within |fail_window| the server is skipped for |fail_timeout|. Returns true when this
  // failure took the server out. Any worker thread; locks only on this failure path.
  bool record_failure(int64_t now_ms, const config::Upstream& settings);
  // Forgets passive failures (an active check has seen the server come back).
  void clear_failures();

  // Applies one active check result (main thread): counters, and the rule that the first
  // result decides at once, then |check.unhealthy_after| consecutive failures take the server
  // down and |check.healthy_after| consecutive passes bring it back (clearing passive
  // failures). Returns the health it had before.
  Health record_check(bool pass, const std::string& detail, const config::HealthCheck& check,
                      const std::string& when);

 private:
  std::mutex failures_mutex_;
  std::deque<int64_t> recent_failures_ms_;
};

using ServerList = std::vector<std::shared_ptr<UpstreamServer>>;
using ServerListPtr = std::shared_ptr<const ServerList>;

}  // namespace fd::proxy
