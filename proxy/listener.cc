#include "proxy/listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace fd::proxy {
namespace {

constexpr int LISTEN_BACKLOG = 4096;
// Seconds the kernel holds a connection that has sent nothing before handing it over anyway.
constexpr int DEFER_ACCEPT_SECONDS = 1;

}  // namespace

Result<int> open_listen_socket(const config::HostPort& endpoint, const std::string& address,
                               bool reuse_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(endpoint.port);
  const char* host = endpoint.host.empty() ? "0.0.0.0" : endpoint.host.c_str();
  int rc = getaddrinfo(host, port.c_str(), &hints, &res);
  if (rc != 0) {
    return make_error(Errc::resolve,
                      "cannot resolve listen address " + address + ": " + gai_strerror(rc));
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return make_error(Errc::bind, std::string("socket: ") + std::strerror(errno));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) {
    // One socket per worker on the same address: the kernel spreads connections between them.
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  }
  // Every client of ours speaks first (a TLS ClientHello, an HTTP request), so a connection is
  // handed to a worker with its first bytes: one wakeup for both the handshake's last ACK and
  // the data, where they would often take two. A silent client waits in the kernel, without a
  // socket or TLS state here, and then meets header_timeout like any other.
  setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &DEFER_ACCEPT_SECONDS, sizeof DEFER_ACCEPT_SECONDS);
  if (res->ai_family == AF_INET6) {
    // "[::]:443" and "0.0.0.0:443" may both be listed: keep the families apart.
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  int bound = ::bind(fd, res->ai_addr, res->ai_addrlen);
  int bind_errno = errno;
  freeaddrinfo(res);
  if (bound != 0 || ::listen(fd, LISTEN_BACKLOG) != 0) {
    std::string reason = std::strerror(bound != 0 ? bind_errno : errno);
    ::close(fd);
    return make_error(Errc::bind, "cannot listen on " + address + ": " + reason);
  }
  return fd;
}

std::string listen_key(const config::HostPort& endpoint) {
  return "[" + endpoint.host + "]:" + std::to_string(endpoint.port);
}

Listener::Listener(EventLoop& loop, int fd, AcceptFn on_accept)
    : on_accept_(std::move(on_accept)),
      listener_(evconnlistener_new(loop.base(), &Listener::on_accept, this,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd)) {
  if (listener_ == nullptr) {
    ::close(fd);
    return;
  }
  evconnlistener_set_error_cb(listener_, &Listener::on_error);
}

Listener::~Listener() {
  if (listener_ != nullptr) {
    evconnlistener_free(listener_);
  }
}

void Listener::set_accepting(bool on) {
  if (on) {
    evconnlistener_enable(listener_);
  } else {
    evconnlistener_disable(listener_);
  }
}

void Listener::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int, void* arg) {
  static_cast<Listener*>(arg)->on_accept_(fd, addr);
}

void Listener::on_error(evconnlistener*, void*) {
  // EMFILE and friends: libevent retries on the next readiness; say so once per occurrence.
  int err = EVUTIL_SOCKET_ERROR();
  log::warn("accept failed", {{"reason", std::strerror(err)}});
}

}  // namespace fd::proxy
