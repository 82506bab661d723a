#include "proxy/event_loop.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "common/log.h"

namespace fd::proxy {

EventLoop::EventLoop() {
  // Only the loop thread touches the base; other threads reach it through the eventfd alone.
  // Without its lock, libevent saves a mutex round trip on every event_add and event_del.
  event_config* cfg = event_config_new();
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (base_ == nullptr || wake_fd_ < 0 ||
      event_base_priority_init(base_, DeferredWrites::PRIORITIES) != 0) {
    log::error("event loop setup failed");
    std::abort();
  }
  post_event_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &EventLoop::on_posted, this);
  event_add(post_event_, nullptr);
  defer_event_ = event_new(base_, -1, 0, &EventLoop::on_deferred, this);
}

EventLoop::~EventLoop() {
  // Objects still waiting for deletion may own events on this base: free them first.
  while (!deferred_.empty()) {
    auto batch = std::move(deferred_);
    deferred_.clear();
    batch.clear();
  }
  // Closures posted after the loop stopped would reach owners that are already gone.
  event_free(post_event_);
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    posted_.clear();
  }
  event_free(defer_event_);
  // A bufferevent with deferred callbacks (libevent's OpenSSL one) that wrote in the loop's
  // last turn has its write callback queued, holding a reference to it. event_base_free
  // cancels such callbacks without dropping their reference, so the bufferevent would never
  // be finalized: run them first.
  event_base_loop(base_, EVLOOP_NONBLOCK);
  event_base_free(base_);
  ::close(wake_fd_);
}

// One event_base_loop call per wakeup, so that deferred_writes_ hears each time the loop runs
// dry.
void EventLoop::run() {
  exiting_ = false;
  while (!exiting_ && event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY) == 0) {
    deferred_writes_.ran_dry();
  }
}

void EventLoop::exit() {
  exiting_ = true;
  event_base_loopbreak(base_);
}

void EventLoop::post(std::function<void()> fn) {
  bool first;
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    first = posted_.empty();
    posted_.push_back(std::move(fn));
  }
  // A non-empty queue has already woken the loop, which has not taken it yet.
  if (first) {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    (void)n;  // EAGAIN means the counter is already non-zero: the loop wakes anyway
  }
}

void EventLoop::on_posted(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<EventLoop*>(arg);
  // Reset the counter before taking the queue: a post after this read writes again.
  uint64_t count;
  ssize_t n = ::read(fd, &count, sizeof count);
  (void)n;
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(self->post_mutex_);
    batch.swap(self->posted_);
  }
  for (auto& fn : batch) {
    fn();
  }
}

void EventLoop::defer_delete(std::unique_ptr<Deferrable> obj) {
  if (deferred_.empty()) {
    event_active(defer_event_, 0, 0);
  }
  deferred_.push_back(std::move(obj));
}

void EventLoop::on_deferred(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<EventLoop*>(arg);
  // Swap first: destructors that defer more objects land in a fresh vector and a new pass.
  auto batch = std::move(self->deferred_);
  self->deferred_.clear();
  batch.clear();
}

namespace {

int64_t coarse_now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  // Never 0, which means "not armed".
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000 + 1;
}

}  // namespace

Timer::Timer(EventLoop& loop, std::function<void()> cb)
    : cb_(std::move(cb)), ev_(evtimer_new(loop.base(), &Timer::on_fire, this)) {}

Timer::~Timer() {
  event_free(ev_);
}

void Timer::arm(std::chrono::milliseconds after) {
  int64_t now = coarse_now_ms();
  // Clamped so that the sum cannot overflow, whatever duration a config holds.
  constexpr int64_t LIMIT = int64_t{1} << 52;
  due_ = now + std::clamp<int64_t>(after.count(), 0, LIMIT);
  if (wakes_ == 0 || wakes_ > due_) {
    wake_at(due_, now);
  }
}

void Timer::wake_at(int64_t when, int64_t now) {
  int64_t in = std::max<int64_t>(when - now, 0);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(in / 1000);
  tv.tv_usec = static_cast<suseconds_t>((in % 1000) * 1000);
  evtimer_add(ev_, &tv);
  wakes_ = when;
}

void Timer::on_fire(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Timer*>(arg);
  self->wakes_ = 0;
  if (self->due_ == 0) {
    return;
  }
  int64_t now = coarse_now_ms();
  if (now < self->due_) {
    self->wake_at(self->due_, now);
    return;
  }
  self->due_ = 0;
  self->cb_();
}

}  // namespace fd::proxy
