#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace fd::proxy {

// How a request body arrives, judged against limits.body_timeout (the whole body, from its
// head) and limits.body_min_rate (bytes per second since the head, or since frontdoor last
// held the body back, once that is longer than a grace period). One per request body: the
// HTTP/1.1 connection's current request, or an HTTP/2 stream. Bookkeeping only; the owner
// runs the timer and cuts the request.
class BodyPace {
 public:
  using Clock = std::chrono::steady_clock;

  // The head arrived at |now|; |timeout| 0 and |min_rate| 0 mean no limit. Returns when to
  // check first.
  std::chrono::milliseconds start(Clock::time_point now, std::chrono::milliseconds timeout,
                                  uint64_t min_rate);
  void on_bytes(size_t len) { bytes_ += len; }
  uint64_t bytes() const { return bytes_; }
  std::chrono::milliseconds elapsed(Clock::time_point now) const;

  // nullptr while the body is on time, else why it is not. |held|: frontdoor itself is not
  // reading (the upstream takes the body slower than the client sends it), so the rate window
  // starts again. |next| is set to when to check again.
  const char* check(Clock::time_point now, bool held, std::chrono::milliseconds* next);

 private:
  // How often a body still arriving is checked.
  static constexpr std::chrono::milliseconds CHECK_INTERVAL{1000};
  // The rate is not judged before this much time has passed in one window.
  static constexpr std::chrono::milliseconds RATE_GRACE{5000};

  Clock::time_point started_;
  Clock::time_point window_start_;
  std::chrono::milliseconds timeout_{0};
  uint64_t min_rate_ = 0;
  uint64_t bytes_ = 0;
  uint64_t window_bytes_ = 0;  // bytes() when the rate window started
};

}  // namespace fd::proxy
