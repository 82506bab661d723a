#include "proxy/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fd::proxy {
namespace {

// What libevent 2.1 reads at most per read event (EVBUFFER_MAX_READ), and what read_more()
// takes from the socket at most after it.
constexpr size_t LIBEVENT_MAX_READ = 4096;
constexpr size_t READ_MORE_MAX = 64 * 1024;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

void Transport::set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Transport::Transport(bufferevent* bev, ssl_st* ssl, int fd, Handler* handler)
    : bev_(bev), ssl_(ssl), fd_(fd), handler_(handler) {}

Transport::~Transport() {
  bufferevent_free(bev_);
  if (ssl_ != nullptr) {
    free_ssl(ssl_);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::unique_ptr<Transport> Transport::accept_tcp(EventLoop& loop, int fd, Handler* handler) {
  set_nodelay(fd);
  bufferevent* bev = bufferevent_socket_new(loop.base(), fd, 0);
  if (bev == nullptr) {
    ::close(fd);
    return nullptr;
  }
  std::unique_ptr<Transport> t(new Transport(bev, nullptr, fd, handler));
  t->install_callbacks();
  return t;
}

Result<std::unique_ptr<Transport>> Transport::connect_tcp(EventLoop& loop, const sockaddr* addr,
                                                          socklen_t len, Handler* handler) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return make_error(Errc::io, std::string("socket: ") + std::strerror(errno));
  }
  set_nodelay(fd);
  bufferevent* bev = bufferevent_socket_new(loop.base(), fd, 0);
  if (bev == nullptr) {
    ::close(fd);
    return make_error(Errc::internal, "bufferevent_socket_new failed");
  }
  std::unique_ptr<Transport> t(new Transport(bev, nullptr, fd, handler));
  t->install_callbacks();
  t->connecting_ = true;
  if (bufferevent_socket_connect(bev, addr, static_cast<int>(len)) != 0) {
    return make_error(Errc::io, std::string("connect: ") + std::strerror(errno));
  }
  return t;
}

void Transport::install_callbacks() {
  bufferevent_setcb(bev_, &Transport::on_read, &Transport::on_write, &Transport::on_event, this);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
}

void Transport::enable_read(bool on) {
  if (closed_) {
    return;
  }
  if (on) {
    bufferevent_enable(bev_, EV_READ);
  } else {
    bufferevent_disable(bev_, EV_READ);
  }
}

bool Transport::reading() const {
  return (bufferevent_get_enabled(bev_) & EV_READ) != 0;
}

void Transport::set_watermarks(size_t max_input, size_t write_low) {
  max_input_ = max_input;
  bufferevent_setwatermark(bev_, EV_READ, 0, max_input);
  bufferevent_setwatermark(bev_, EV_WRITE, write_low, 0);
}

void Transport::set_timeouts(std::chrono::milliseconds read, std::chrono::milliseconds write) {
  timeval r = to_timeval(read);
  timeval w = to_timeval(write);
  bufferevent_set_timeouts(bev_, read.count() > 0 ? &r : nullptr, write.count() > 0 ? &w : nullptr);
}

void Transport::shutdown_write() {
  if (!closed_ && fd_ >= 0) {
    ::shutdown(fd_, SHUT_WR);
  }
}

void Transport::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
  bufferevent_disable(bev_, EV_READ | EV_WRITE);
}

void Transport::read_more() {
  evbuffer* in = input();
  size_t have = evbuffer_get_length(in);
  // Less than libevent's cap in the buffer: its read was not cut short, so the socket held no
  // more (a small response costs no extra syscall).
  if (have < LIBEVENT_MAX_READ) {
    return;
  }
  int ready = 0;
  if (::ioctl(fd_, FIONREAD, &ready) != 0 || ready <= 0) {
    return;
  }
  size_t want = std::min(static_cast<size_t>(ready), READ_MORE_MAX);
  if (max_input_ != 0) {
    want = have >= max_input_ ? 0 : std::min(want, max_input_ - have);
  }
  if (want == 0) {
    return;
  }
  // bufferevent keeps the end of its input frozen but for its own reads; this is one.
  evbuffer_unfreeze(in, 0);
  evbuffer_iovec vec[2];
  int n = evbuffer_reserve_space(in, static_cast<ev_ssize_t>(want), vec, 2);
  if (n <= 0) {
    evbuffer_freeze(in, 0);
    return;
  }
  iovec iov[2];
  size_t room = want;
  for (int i = 0; i < n; ++i) {
    iov[i].iov_base = vec[i].iov_base;
    iov[i].iov_len = std::min(vec[i].iov_len, room);
    room -= iov[i].iov_len;
  }
  ssize_t got = ::readv(fd_, iov, n);
  size_t left = got > 0 ? static_cast<size_t>(got) : 0;
  for (int i = 0; i < n; ++i) {
    vec[i].iov_len = std::min(iov[i].iov_len, left);
    left -= vec[i].iov_len;
  }
  evbuffer_commit_space(in, vec, n);
  evbuffer_freeze(in, 0);
}

void Transport::on_read(bufferevent*, void* arg) {
  auto* self = static_cast<Transport*>(arg);
  if (self->ssl_ == nullptr) {
    self->read_more();
  }
  self->handler_->on_readable();
}

void Transport::on_write(bufferevent*, void* arg) {
  auto* self = static_cast<Transport*>(arg);
  self->handler_->on_drained();
}

void Transport::on_event(bufferevent*, short what, void* arg) {
  auto* self = static_cast<Transport*>(arg);
  if ((what & BEV_EVENT_CONNECTED) != 0) {
    self->connecting_ = false;
    self->handler_->on_connected();
    return;
  }
  bool eof = (what & BEV_EVENT_EOF) != 0;
  bool timeout = (what & BEV_EVENT_TIMEOUT) != 0;
  std::string reason = eof ? "peer closed" : timeout ? "timeout" : self->error_reason(what);
  self->handler_->on_closed(eof, timeout, reason);
}

}  // namespace fd::proxy
