#include "proxy/upstream_server.h"

#include <chrono>

namespace fd::proxy {

const char* to_string(Health h) {
  switch (h) {
    case Health::unknown:
      return "unknown";
    case Health::up:
      return "up";
    case Health::down:
      return "down";
  }
  return "unknown";
}

int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool UpstreamServer::record_failure(int64_t now_ms, const config::Upstream& settings) {
  failures.fetch_add(1, std::memory_order_relaxed);
  if (settings.max_fails == 0) {
    return false;
  }
  std::lock_guard<std::mutex> lock(failures_mutex_);
  recent_failures_ms_.push_back(now_ms);
  while (!recent_failures_ms_.empty() &&
         recent_failures_ms_.front() <= now_ms - settings.fail_window.count()) {
    recent_failures_ms_.pop_front();
  }
  if (recent_failures_ms_.size() < settings.max_fails) {
    return false;
  }
  recent_failures_ms_.clear();
  passive_down_until_ms.store(now_ms + settings.fail_timeout.count(), std::memory_order_relaxed);
  return true;
}

void UpstreamServer::clear_failures() {
  std::lock_guard<std::mutex> lock(failures_mutex_);
  recent_failures_ms_.clear();
  passive_down_until_ms.store(0, std::memory_order_relaxed);
}

Health UpstreamServer::record_check(bool pass, const std::string& detail,
                                    const config::HealthCheck& check, const std::string& when) {
  last_check_time = when;
  last_check_result = pass ? "pass" : "fail: " + detail;
  Health before = health.load(std::memory_order_relaxed);
  Health after = before;
  if (pass) {
    ++consecutive_passes;
    consecutive_failures = 0;
    if (before == Health::unknown ||
        (before == Health::down && consecutive_passes >= check.healthy_after)) {
      after = Health::up;
    }
  } else {
    ++consecutive_failures;
    consecutive_passes = 0;
    if (before == Health::unknown ||
        (before == Health::up && consecutive_failures >= check.unhealthy_after)) {
      after = Health::down;
    }
  }
  if (after == Health::up && before != Health::up) {
    clear_failures();
  }
  health.store(after, std::memory_order_relaxed);
  return before;
}

}  // namespace fd::proxy
