#include "proxy/access_log_batch.h"

#include <climits>

#include "common/log.h"

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
    log::write_all(fd_, line);
    return;
  }
  if (held_.empty()) {
    event_active(flush_ev_, 0, 0);
  }
  held_.append(line);
}

void AccessLogBatch::flush() {
  if (!held_.empty()) {
    log::write_all(fd_, held_);
    held_.clear();
  }
}

void AccessLogBatch::on_flush(evutil_socket_t, short, void* arg) {
  static_cast<AccessLogBatch*>(arg)->flush();
}

}  // namespace fd::proxy
