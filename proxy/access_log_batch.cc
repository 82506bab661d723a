#include "proxy/access_log_batch.h"

#include <cerrno>
#include <climits>

namespace fd::proxy {
namespace {

thread_local AccessLogBatch* current_batch = nullptr;

}  // namespace

AccessLogBatch::AccessLogBatch(EventLoop& loop, int fd)
    : fd_(fd),
      flush_ev_(event_new(loop.base(), -1, 0, &AccessLogBatch::on_flush, this)),
      outer_(current_batch) {
  held_.reserve(PIPE_BUF);
  current_batch = this;
}

AccessLogBatch::~AccessLogBatch() {
  flush();
  current_batch = outer_;
  event_free(flush_ev_);
}

AccessLogBatch* AccessLogBatch::current() {
  return current_batch;
}

void AccessLogBatch::add(std::string_view line) {
  if (held_.size() + line.size() > PIPE_BUF) {
    flush();
  }
  if (line.size() > PIPE_BUF) {
    write_all(line);
    return;
  }
  if (held_.empty()) {
    event_active(flush_ev_, 0, 0);
  }
  held_.append(line);
}

void AccessLogBatch::flush() {
  if (!held_.empty()) {
    write_all(held_);
    held_.clear();
  }
}

void AccessLogBatch::on_flush(evutil_socket_t, short, void* arg) {
  static_cast<AccessLogBatch*>(arg)->flush();
}

void AccessLogBatch::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace fd::proxy
