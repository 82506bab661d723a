#include "proxy/socket_transport.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fd::proxy {
namespace {

// The room a read reserves in input() becomes an evbuffer chain of the next power of two
// above it plus libevent's 48-byte chain header. These sizes keep chains at exactly 1 KiB
// (glibc serves that from its per-thread cache) and 16 KiB, where 16 KiB of room would
// allocate 32 KiB.
constexpr size_t CHAIN_HEADER_ROOM = 64;
constexpr size_t READ_MIN = 1024 - CHAIN_HEADER_ROOM;
constexpr size_t READ_CHUNK = 16 * 1024 - CHAIN_HEADER_ROOM;
// Chunks one send passes to the kernel, as libevent's evbuffer_write does.
constexpr int SEND_CHUNKS = 128;

}  // namespace

SocketTransport::SocketTransport(EventLoop& loop, int fd, Handler* handler)
    : Transport(fd, handler),
      in_(evbuffer_new()),
      out_(evbuffer_new()),
      deferred_writes_(loop.deferred_writes()),
      read_ev_(event_new(loop.base(), fd, EV_READ | EV_PERSIST, &SocketTransport::on_read, this)),
      write_ev_(event_new(loop.base(), fd, EV_WRITE, &SocketTransport::on_write, this)),
      read_timer_(loop, [this] { handler_->on_closed(false, true, "timeout"); }),
      first_read_(READ_MIN) {
  evbuffer_add_cb(in_, &SocketTransport::on_input_changed, this);
  evbuffer_add_cb(out_, &SocketTransport::on_output_changed, this);
}

SocketTransport::~SocketTransport() {
  stop_waiting();
  closed_ = true;
  evbuffer_free(in_);
  evbuffer_free(out_);
  event_free(read_ev_);
  event_free(write_ev_);
  ::close(fd_);
}

void SocketTransport::start(bool connecting) {
  connecting_ = connecting;
  if (connecting_) {
    add_write_event();
  } else {
    update_read_event();
  }
}

void SocketTransport::enable_read(bool on) {
  if (closed_) {
    return;
  }
  read_enabled_ = on;
  update_read_event();
}

void SocketTransport::set_watermarks(size_t max_input, size_t write_low) {
  max_input_ = max_input;
  write_low_ = write_low;
  update_read_event();
}

void SocketTransport::set_timeouts(std::chrono::milliseconds read,
                                   std::chrono::milliseconds write) {
  read_timeout_ = read;
  write_timeout_ = write;
  restart_read_timer();
  if (write_registered_) {
    add_write_event();
  }
}

void SocketTransport::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  event_del(read_ev_);
  event_del(write_ev_);
  stop_waiting();
  read_timer_.cancel();
  write_registered_ = false;
}

ssize_t SocketTransport::send_buffer(evbuffer* buf, int fd) {
  evbuffer_iovec chunks[SEND_CHUNKS];
  int n = evbuffer_peek(buf, -1, nullptr, chunks, SEND_CHUNKS);
  if (n <= 0) {
    return 0;
  }
  ssize_t sent;
  if (n == 1) {
    sent = ::send(fd, chunks[0].iov_base, chunks[0].iov_len, MSG_NOSIGNAL);
  } else {
    iovec iov[SEND_CHUNKS];
    int count = std::min(n, SEND_CHUNKS);
    for (int i = 0; i < count; ++i) {
      iov[i].iov_base = chunks[i].iov_base;
      iov[i].iov_len = chunks[i].iov_len;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  }
  if (sent > 0) {
    evbuffer_drain(buf, static_cast<size_t>(sent));
  }
  return sent;
}

size_t SocketTransport::read_size(size_t total) const {
  size_t chunk = total == 0 ? first_read_ : READ_CHUNK;
  if (max_input_ == 0) {
    return chunk;
  }
  size_t have = evbuffer_get_length(in_);
  return have >= max_input_ ? 0 : std::min(chunk, max_input_ - have);
}

void SocketTransport::update_read_event() {
  bool want = !closed_ && !connecting_ && !eof_ &&
              (handshaking_ || (read_enabled_ && !input_full()));
  if (want == read_registered_) {
    return;
  }
  read_registered_ = want;
  if (want) {
    event_add(read_ev_, nullptr);
  } else {
    event_del(read_ev_);
  }
  restart_read_timer();
  if (want && input_buffered()) {
    schedule_read();
  }
}

void SocketTransport::restart_read_timer() {
  if (read_registered_ && read_timeout_.count() > 0) {
    read_timer_.arm(read_timeout_);
  } else {
    read_timer_.cancel();
  }
}

void SocketTransport::schedule_read() {
  event_active(read_ev_, EV_READ, 0);
}

void SocketTransport::schedule_write() {
  if (closed_ || connecting_ || write_queued_ || write_registered_) {
    return;
  }
  write_queued_ = true;
  if (defer_writes_ && deferred_writes_.busy()) {
    write_waiting_ = true;
    deferred_writes_.defer(write_ev_);
  } else {
    event_active(write_ev_, EV_WRITE, 0);
  }
}

void SocketTransport::stop_waiting() {
  if (write_waiting_) {
    write_waiting_ = false;
    deferred_writes_.forget(write_ev_);
  }
}

void SocketTransport::add_write_event() {
  // Waiting for room is not deferred: the bytes have waited already.
  event_priority_set(write_ev_, DeferredWrites::NORMAL);
  if (write_timeout_.count() > 0) {
    timeval tv = to_timeval(write_timeout_);
    event_add(write_ev_, &tv);
  } else {
    if (write_registered_) {
      // event_add without a timeout would keep the one the pending event has.
      event_del(write_ev_);
    }
    event_add(write_ev_, nullptr);
  }
  write_registered_ = true;
}

void SocketTransport::on_input_changed(evbuffer*, const evbuffer_cb_info*, void* arg) {
  static_cast<SocketTransport*>(arg)->update_read_event();
}

// Output written by the owner goes out in one pass once the current callbacks return.
void SocketTransport::on_output_changed(evbuffer*, const evbuffer_cb_info* info, void* arg) {
  if (info->n_added != 0) {
    static_cast<SocketTransport*>(arg)->schedule_write();
  }
}

void SocketTransport::on_read(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<SocketTransport*>(arg);
  if (self->closed_) {
    return;
  }
  self->deferred_writes_.note_read();
  self->restart_read_timer();
  self->read_available();
}

// A pass starts with a read as large as the last pass brought, so that small messages (most
// requests, most API answers) use small chunks and a stream of large ones reads in full ones.
void SocketTransport::size_first_read(size_t total) {
  size_t size = READ_MIN;
  while (size < total && size < READ_CHUNK) {
    size = (size + CHAIN_HEADER_ROOM) * 2 - CHAIN_HEADER_ROOM;
  }
  first_read_ = size;
}

void SocketTransport::finish_read(size_t total, bool eof, const std::string& error) {
  size_first_read(total);
  if (total > 0) {
    handler_->on_readable();
  }
  if (closed_) {
    return;
  }
  if (eof) {
    eof_ = true;
    update_read_event();
    handler_->on_closed(true, false, "peer closed");
  } else if (!error.empty()) {
    handler_->on_closed(false, false, error);
  }
}

void SocketTransport::on_write(evutil_socket_t, short what, void* arg) {
  auto* self = static_cast<SocketTransport*>(arg);
  // Fired by epoll or the timeout (a one-shot event, no longer registered) or activated.
  self->stop_waiting();
  self->write_queued_ = false;
  self->write_registered_ = false;
  if (self->closed_) {
    return;
  }
  if ((what & EV_TIMEOUT) != 0) {
    self->handler_->on_closed(false, true, "timeout");
    return;
  }
  if (self->connecting_) {
    self->finish_connect();
    return;
  }
  self->write_pending();
}

void SocketTransport::finish_write(size_t before, bool socket_full) {
  if (closed_) {
    return;
  }
  if (socket_full) {
    // Wait for room, with the write timeout counting from now.
    add_write_event();
  }
  size_t after = unsent();
  if (after < before && after <= write_low_) {
    handler_->on_drained();
  }
}

void SocketTransport::finish_connect() {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    err = errno;
  }
  if (err == EINPROGRESS) {
    add_write_event();
    return;
  }
  if (err != 0) {
    handler_->on_closed(false, false, std::string("connect: ") + std::strerror(err));
    return;
  }
  connecting_ = false;
  update_read_event();
  handler_->on_connected();
  if (!closed_ && unsent() > 0) {
    write_pending();
  }
}

}  // namespace fd::proxy
