#include "proxy/body_pace.h"

#include <algorithm>

namespace fd::proxy {

std::chrono::milliseconds BodyPace::start(Clock::time_point now, std::chrono::milliseconds timeout,
                                          uint64_t min_rate) {
  started_ = window_start_ = now;
  timeout_ = timeout;
  min_rate_ = min_rate;
  bytes_ = window_bytes_ = 0;
  return timeout_.count() > 0 ? std::min(CHECK_INTERVAL, timeout_) : CHECK_INTERVAL;
}

std::chrono::milliseconds BodyPace::elapsed(Clock::time_point now) const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - started_);
}

const char* BodyPace::check(Clock::time_point now, bool held, std::chrono::milliseconds* next) {
  auto since_head = elapsed(now);
  if (timeout_.count() > 0 && since_head >= timeout_) {
    return "request body not complete within body_timeout";
  }
  if (held) {
    window_start_ = now;
    window_bytes_ = bytes_;
  } else if (min_rate_ > 0) {
    auto window = std::chrono::duration_cast<std::chrono::milliseconds>(now - window_start_);
    uint64_t received = bytes_ - window_bytes_;
    if (window >= RATE_GRACE &&
        received * 1000 < min_rate_ * static_cast<uint64_t>(window.count())) {
      return "request body slower than body_min_rate";
    }
  }
  *next = CHECK_INTERVAL;
  if (timeout_.count() > 0) {
    *next = std::min(*next, timeout_ - since_head);
  }
  return nullptr;
}

}  // namespace fd::proxy
