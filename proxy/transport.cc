#include "proxy/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proxy/socket_transport.h"

namespace fd::proxy {
namespace {

// Plain TCP: reads into input(), sends from output(), both straight on the socket.
class TcpTransport final : public SocketTransport {
 public:
  TcpTransport(EventLoop& loop, int fd, Handler* handler)
      : SocketTransport(loop, fd, handler) {}

  using SocketTransport::defer_writes;
  using SocketTransport::start;

 private:
  void read_available() override {
    size_t total = 0;
    int err = 0;
    bool eof = false;
    while (total < READ_MAX_PER_EVENT) {
      size_t want = read_size(total);
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
      ssize_t got = n == 1 ? ::recv(fd_, iov[0].iov_base, iov[0].iov_len, 0) : ::readv(fd_, iov, n);
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
    finish_read(total, eof, err != 0 ? std::string("read: ") + std::strerror(err) : "");
  }

  void write_pending() override {
    size_t before = evbuffer_get_length(out_);
    if (before > 0) {
      ssize_t n = send_buffer(out_, fd_);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        handler_->on_closed(false, false, std::string("write: ") + std::strerror(errno));
        return;
      }
    }
    finish_write(before, evbuffer_get_length(out_) > 0);
  }
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
  t->defer_writes();
  // Even a connect that completed at once reports through on_connected, from the loop.
  t->start(true);
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace fd::proxy
