#pragma once

#include <event2/event.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include "proxy/event_loop.h"

namespace fd::proxy {

// A loop thread's access lines, held and written together at the end of the loop turn that
// made them: one write(2) per turn instead of one per request (2-5% of an HTTP/2 request's CPU,
// more when stdout is a pipe). Each write holds whole lines and at most PIPE_BUF bytes, the most
// a pipe (docker's log driver) takes atomically, so lines from several workers never interleave.
//
// Made on the loop thread; while it lives, write_access_line on that thread goes through it.
// A line is held for one loop turn at most; destruction writes what is left.
class AccessLogBatch {
 public:
  explicit AccessLogBatch(EventLoop& loop, int fd = STDOUT_FILENO);
  ~AccessLogBatch();
  AccessLogBatch(const AccessLogBatch&) = delete;
  AccessLogBatch& operator=(const AccessLogBatch&) = delete;

  // The batch of the calling thread, or nullptr.
  static AccessLogBatch* current();

  // Holds |line| (newline included) for the end of this loop turn.
  void add(std::string_view line);
  void flush();

 private:
  static void on_flush(evutil_socket_t, short, void* arg);

  int fd_;
  event* flush_ev_;
  std::string held_;
  AccessLogBatch* outer_;  // the thread's previous batch, restored on destruction
};

}  // namespace fd::proxy
