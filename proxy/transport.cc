#include "proxy/transport.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fd::proxy {
namespace {

// What one read asks the socket for. A shorter answer means the socket is empty, so a small
// message costs one read(2); a 16 KiB response with its head costs two.
constexpr size_t READ_CHUNK = 16 * 1024;
// A busy peer cannot hold the loop on one connection longer than this per read event.
constexpr size_t READ_MAX_PER_EVENT = 256 * 1024;

// Plain TCP on raw libevent events, with evbuffers for input and output. Unlike a
// bufferevent it keeps the read event registered while reading is on, reads without asking
// FIONREAD first, and writes in a callback activated on the loop (no epoll_ctl) once the
// current callbacks are done, so a request and its answer cost no epoll_ctl at all unless a
// socket is full. The write event is registered with epoll only while output waits for room.
class TcpTransport final : public Transport {
 public:
  TcpTransport(EventLoop& loop, int fd, Handler* handler)
      : Transport(fd, handler),
        in_(evbuffer_new()),
        out_(evbuffer_new()),
        read_ev_(event_new(loop.base(), fd, EV_READ | EV_PERSIST, &TcpTransport::on_read, this)),
        write_ev_(event_new(loop.base(), fd, EV_WRITE, &TcpTransport::on_write, this)) {
    evbuffer_add_cb(in_, &TcpTransport::on_input_changed, this);
    evbuffer_add_cb(out_, &TcpTransport::on_output_changed, this);
  }

  ~TcpTransport() override {
    closed_ = true;
    evbuffer_free(in_);
    evbuffer_free(out_);
    event_free(read_ev_);
    event_free(write_ev_);
    ::close(fd_);
  }

  // Accepted sockets read at once; outgoing ones once connected.
  void start(bool connecting) {
    connecting_ = connecting;
    if (connecting_) {
      add_write_event();
    } else {
      update_read_event();
    }
  }

  evbuffer* input() const override { return in_; }
  evbuffer* output() const override { return out_; }

  void enable_read(bool on) override {
    if (closed_) {
      return;
    }
    read_enabled_ = on;
    update_read_event();
  }

  bool reading() const override { return read_enabled_; }

  void set_watermarks(size_t max_input, size_t write_low) override {
    max_input_ = max_input;
    write_low_ = write_low;
    update_read_event();
  }

  void set_timeouts(std::chrono::milliseconds read, std::chrono::milliseconds write) override {
    read_timeout_ = read;
    write_timeout_ = write;
    read_registered_ = false;  // re-added below with the new timeout
    update_read_event();
    if (write_registered_) {
      add_write_event();
    }
  }

  void close() override {
    if (closed_) {
      return;
    }
    closed_ = true;
    event_del(read_ev_);
    event_del(write_ev_);
    write_registered_ = false;
  }

 private:
  bool input_full() const { return max_input_ != 0 && evbuffer_get_length(in_) >= max_input_; }

  // Keeps the read event registered exactly while reading is on, connected, not at EOF and
  // below the input watermark; unchanged state costs no syscall.
  void update_read_event() {
    bool want = !closed_ && !connecting_ && !eof_ && read_enabled_ && !input_full();
    if (want == read_registered_) {
      return;
    }
    read_registered_ = want;
    if (!want) {
      event_del(read_ev_);
    } else if (read_timeout_.count() > 0) {
      timeval tv = to_timeval(read_timeout_);
      event_add(read_ev_, &tv);
    } else {
      event_add(read_ev_, nullptr);
    }
  }

  void add_write_event() {
    write_registered_ = true;
    if (write_timeout_.count() > 0) {
      timeval tv = to_timeval(write_timeout_);
      event_add(write_ev_, &tv);
    } else {
      event_add(write_ev_, nullptr);
    }
  }

  static void on_input_changed(evbuffer*, const evbuffer_cb_info*, void* arg) {
    static_cast<TcpTransport*>(arg)->update_read_event();
  }

  // Output written by the owner goes out in one writev once the current callbacks return.
  static void on_output_changed(evbuffer*, const evbuffer_cb_info* info, void* arg) {
    auto* self = static_cast<TcpTransport*>(arg);
    if (info->n_added == 0 || self->closed_ || self->connecting_ || self->write_queued_ ||
        self->write_registered_) {
      return;
    }
    self->write_queued_ = true;
    event_active(self->write_ev_, EV_WRITE, 0);
  }

  static void on_read(evutil_socket_t, short what, void* arg) {
    auto* self = static_cast<TcpTransport*>(arg);
    if ((what & EV_TIMEOUT) != 0) {
      self->handler_->on_closed(false, true, "timeout");
      return;
    }
    self->read_available();
  }

  void read_available() {
    size_t total = 0;
    int err = 0;
    bool eof = false;
    while (total < READ_MAX_PER_EVENT) {
      size_t want = READ_CHUNK;
      if (max_input_ != 0) {
        size_t have = evbuffer_get_length(in_);
        want = have >= max_input_ ? 0 : std::min(want, max_input_ - have);
      }
      if (want == 0) {
        break;
      }
      evbuffer_iovec vec[2];
      int n = evbuffer_reserve_space(in_, static_cast<ev_ssize_t>(want), vec, 2);
      if (n <= 0) {
        err = ENOMEM;
        break;
      }
      iovec iov[2];
      size_t room = want;
      for (int i = 0; i < n; ++i) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = std::min(vec[i].iov_len, room);
        room -= iov[i].iov_len;
      }
      ssize_t got = ::readv(fd_, iov, n);
      if (got <= 0) {
        evbuffer_commit_space(in_, vec, 0);
        if (got == 0) {
          eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          err = errno;
        }
        break;
      }
      size_t left = static_cast<size_t>(got);
      for (int i = 0; i < n; ++i) {
        vec[i].iov_len = std::min(iov[i].iov_len, left);
        left -= vec[i].iov_len;
      }
      evbuffer_commit_space(in_, vec, n);
      total += static_cast<size_t>(got);
      if (static_cast<size_t>(got) < want) {
        break;
      }
    }
    // Bytes first, then the end of the stream, as a bufferevent reports them.
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
    } else if (err != 0) {
      handler_->on_closed(false, false, std::string("read: ") + std::strerror(err));
    }
  }

  static void on_write(evutil_socket_t, short what, void* arg) {
    auto* self = static_cast<TcpTransport*>(arg);
    // Fired by epoll or the timeout (a one-shot event, no longer registered) or activated.
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

  void finish_connect() {
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
    if (!closed_ && evbuffer_get_length(out_) > 0) {
      write_pending();
    }
  }

  void write_pending() {
    size_t before = evbuffer_get_length(out_);
    if (before > 0) {
      int n = evbuffer_write(out_, fd_);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        handler_->on_closed(false, false, std::string("write: ") + std::strerror(errno));
        return;
      }
    }
    size_t after = evbuffer_get_length(out_);
    if (after > 0) {
      // The socket is full: wait for room, with the write timeout counting from now.
      add_write_event();
    }
    if (after < before && after <= write_low_) {
      handler_->on_drained();
    }
  }

  evbuffer* in_;
  evbuffer* out_;
  event* read_ev_;
  event* write_ev_;
  size_t max_input_ = 0;
  size_t write_low_ = 0;
  std::chrono::milliseconds read_timeout_{0};
  std::chrono::milliseconds write_timeout_{0};
  bool read_enabled_ = true;
  bool read_registered_ = false;
  bool connecting_ = false;
  bool eof_ = false;
  bool write_queued_ = false;      // write_ev_ activated, its callback not yet run
  bool write_registered_ = false;  // write_ev_ added: waiting for room (or for the connect)
};

}  // namespace

void Transport::set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

timeval Transport::to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

void Transport::shutdown_write() {
  if (!closed_ && fd_ >= 0) {
    ::shutdown(fd_, SHUT_WR);
  }
}

std::unique_ptr<Transport> Transport::accept_tcp(EventLoop& loop, int fd, Handler* handler) {
  set_nodelay(fd);
  auto t = std::make_unique<TcpTransport>(loop, fd, handler);
  t->start(false);
  return t;
}

Result<std::unique_ptr<Transport>> Transport::connect_tcp(EventLoop& loop, const sockaddr* addr,
                                                          socklen_t len, Handler* handler) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return make_error(Errc::io, std::string("socket: ") + std::strerror(errno));
  }
  set_nodelay(fd);
  if (::connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
    std::string reason = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return make_error(Errc::io, reason);
  }
  auto t = std::make_unique<TcpTransport>(loop, fd, handler);
  // Even a connect that completed at once reports through on_connected, from the loop.
  t->start(true);
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace fd::proxy
