#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy/deferred_writes.h"

namespace fd::proxy {

// Base for objects that must not be destroyed while one of their callbacks is on the stack
// (connections, exchanges). They die only in EventLoop's deferred-delete pass.
class Deferrable {
 public:
  virtual ~Deferrable() = default;
};

// One libevent event_base, owned by one thread. post() is the only call other threads may make.
class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  event_base* base() const { return base_; }
  DeferredWrites& deferred_writes() { return deferred_writes_; }

  // Runs until exit() is called. Loop thread.
  void run();
  // Makes run() return after the current callbacks. Loop thread.
  void exit();

  // Queues |fn| to run on the loop thread. Thread-safe; the only cross-thread entry point.
  void post(std::function<void()> fn);

  // Takes ownership of |obj| and destroys it on a later pass of this loop, after every callback
  // now on the stack has returned. Loop thread. A destructor that defers again is handled on
  // the following pass.
  void defer_delete(std::unique_ptr<Deferrable> obj);

 private:
  static void on_posted(evutil_socket_t, short, void* arg);
  static void on_deferred(evutil_socket_t, short, void* arg);

  event_base* base_;
  DeferredWrites deferred_writes_;
  bool exiting_ = false;
  int wake_fd_;  // eventfd that post() writes to wake the loop
  event* post_event_;
  event* defer_event_;
  std::mutex post_mutex_;
  std::vector<std::function<void()>> posted_;
  std::vector<std::unique_ptr<Deferrable>> deferred_;
};

// A one-shot timer on a loop. Stops itself when destroyed, so declare it after everything its
// callback touches: it dies first.
//
// Connections re-arm and cancel their timeouts on every request, and a libevent timer costs a
// heap insert or removal each time. So arming later than the libevent timer is set for, or
// cancelling, only records the deadline; when that timer fires before the deadline it is set
// again for the rest. Deadlines are in the coarse monotonic clock (a few ms of resolution).
class Timer {
 public:
  Timer(EventLoop& loop, std::function<void()> cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // (Re)starts the timer; any pending expiry is replaced.
  void arm(std::chrono::milliseconds after);
  void cancel() { due_ = 0; }
  bool armed() const { return due_ != 0; }

 private:
  static void on_fire(evutil_socket_t, short, void* arg);
  void wake_at(int64_t when, int64_t now);

  std::function<void()> cb_;
  event* ev_;
  int64_t due_ = 0;    // coarse monotonic ms when cb_ runs; 0 when not armed
  int64_t wakes_ = 0;  // when ev_ fires; 0 when it is not pending
};

}  // namespace fd::proxy
