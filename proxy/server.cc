#include "proxy/server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/log.h"

namespace fd::proxy {
namespace {

constexpr int LISTEN_BACKLOG = 4096;
constexpr std::chrono::milliseconds POLL_INTERVAL{50};

Result<int> open_listen_socket(const config::Listener& l) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(l.endpoint.port);
  const char* host = l.endpoint.host.empty() ? "0.0.0.0" : l.endpoint.host.c_str();
  int rc = getaddrinfo(host, port.c_str(), &hints, &res);
  if (rc != 0) {
    return make_error(Errc::resolve, "cannot resolve listen address " + l.address + ": " +
                                         gai_strerror(rc));
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return make_error(Errc::bind, std::string("socket: ") + std::strerror(errno));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // One socket per worker on the same address: the kernel spreads connections between them.
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
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
    return make_error(Errc::bind, "cannot listen on " + l.address + ": " + reason);
  }
  return fd;
}

}  // namespace

Server::Server(std::shared_ptr<const config::Config> config)
    : config_(std::move(config)),
      poll_timer_(loop_, [this] { check_workers(); }),
      deadline_timer_(loop_, [this] {
        forced_ = true;
        log::warn("shutdown timeout reached: closing remaining connections");
        for (auto& w : workers_) {
          w->request_stop();
        }
      }) {}

Server::~Server() {
  for (auto* ev : signal_events_) {
    event_free(ev);
  }
}

bool Server::open_sockets(unsigned workers, std::vector<std::vector<ListenSocket>>* out) {
  out->assign(workers, {});
  for (size_t li = 0; li < config_->listeners.size(); ++li) {
    for (unsigned w = 0; w < workers; ++w) {
      auto fd = open_listen_socket(config_->listeners[li]);
      if (!fd) {
        log::error("startup failed", {{"reason", fd.error().message}});
        for (auto& list : *out) {
          for (auto& s : list) {
            ::close(s.fd);
          }
        }
        return false;
      }
      (*out)[w].push_back(ListenSocket{*fd, li});
    }
  }
  return true;
}

int Server::run() {
  auto snapshot = RuntimeSnapshot::build(config_);
  if (!snapshot) {
    log::error("startup failed", {{"reason", snapshot.error().message}});
    return 2;
  }
  snapshot_ = *snapshot;
  unsigned workers = config_->workers;
  if (workers == 0) {
    workers = std::max(1u, std::thread::hardware_concurrency());
  }
  std::vector<std::vector<ListenSocket>> sockets;
  if (!open_sockets(workers, &sockets)) {
    return 2;
  }

  // Workers inherit a mask without the signals we handle, so they all reach the main loop.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    sigaddset(&handled, sig);
  }
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &handled, &previous);
  for (unsigned w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<Worker>(w, snapshot_, std::move(sockets[w]), connections_));
    workers_.back()->start();
  }
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    event* ev = evsignal_new(loop_.base(), sig, &Server::on_signal, this);
    evsignal_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);

  for (const auto& l : config_->listeners) {
    log::info("listening", {{"address", l.address},
                            {"tls", l.tls},
                            {"redirect_https", l.redirect_https}});
  }
  log::info("ready", {{"workers", workers}, {"config", config_->source}});
  loop_.run();

  size_t cut = 0;
  for (auto& w : workers_) {
    w->join();
    cut += w->cut_connections();
  }
  log::info("stopped", {{"forced", forced_}, {"connections_cut", cut}});
  return 0;
}

void Server::on_signal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  switch (sig) {
    case SIGTERM:
      self->begin_shutdown("SIGTERM");
      return;
    case SIGINT:
      self->begin_shutdown("SIGINT");
      return;
    case SIGHUP:
      log::warn("SIGHUP received: configuration reload is not implemented yet; "
                "the running configuration stays in place");
      return;
    default:
      return;
  }
}

void Server::begin_shutdown(const char* signal_name) {
  if (shutting_down_) {
    return;
  }
  shutting_down_ = true;
  log::info("shutting down", {{"signal", signal_name},
                              {"timeout_ms", config_->shutdown_timeout.count()}});
  for (auto& w : workers_) {
    w->request_drain();
  }
  deadline_timer_.arm(config_->shutdown_timeout);
  poll_timer_.arm(POLL_INTERVAL);
}

void Server::check_workers() {
  for (const auto& w : workers_) {
    if (!w->finished()) {
      poll_timer_.arm(POLL_INTERVAL);
      return;
    }
  }
  loop_.exit();
}

}  // namespace fd::proxy
