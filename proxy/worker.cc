#include "proxy/worker.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>

#include "common/log.h"
#include "proxy/downstream_connection.h"

namespace fd::proxy {
namespace {

std::string peer_ip(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    }
  } else if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  }
  return buf;
}

}  // namespace

Worker::Worker(unsigned id, std::shared_ptr<const RuntimeSnapshot> snapshot,
               std::vector<ListenSocket> sockets, std::atomic<uint32_t>& connections)
    : id_(id),
      snapshot_(std::move(snapshot)),
      sockets_(std::move(sockets)),
      connections_(connections),
      pool_(loop_),
      rng_(std::random_device{}()) {}

Worker::~Worker() {
  join();
  for (const auto& s : sockets_) {
    if (s.fd >= 0) {
      ::close(s.fd);
    }
  }
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Worker::request_drain() {
  loop_.post([this] { drain(); });
}

void Worker::request_stop() {
  loop_.post([this] { stop(); });
}

void Worker::run() {
  std::string name = "fd-worker-" + std::to_string(id_);
  pthread_setname_np(pthread_self(), name.c_str());
  for (auto& s : sockets_) {
    size_t index = s.listener_index;
    auto listener = std::make_unique<Listener>(
        loop_, s.fd, [this, index](int fd, const sockaddr* peer) { accept(fd, peer, index); });
    s.fd = -1;  // the Listener owns it now, even when it failed
    if (!listener->ok()) {
      log::error("cannot listen", {{"worker", id_}});
      continue;
    }
    listeners_.push_back(std::move(listener));
  }
  loop_.run();
  cut_ = conns_.size();
  std::vector<DownstreamConnection*> left;
  for (auto& c : conns_) {
    left.push_back(c.get());
  }
  for (auto* c : left) {
    c->close("shutdown timeout");
  }
  listeners_.clear();
  pool_.clear();
  finished_.store(true, std::memory_order_release);
}

void Worker::accept(int fd, const sockaddr* peer, size_t listener_index) {
  uint32_t limit = snapshot_->config().limits.max_connections;
  if (connections_.fetch_add(1, std::memory_order_relaxed) >= limit) {
    connections_.fetch_sub(1, std::memory_order_relaxed);
    ::close(fd);
    log::warn("connection refused: max_connections reached", {{"limit", limit}});
    return;
  }
  const config::Listener& l = snapshot_->config().listeners[listener_index];
  auto conn = std::make_unique<DownstreamConnection>(*this, snapshot_, listener_index,
                                                     ClientInfo{peer_ip(peer), l.tls});
  DownstreamConnection* raw = conn.get();
  conns_.push_front(std::move(conn));
  raw->self = conns_.begin();
  if (!raw->start(fd)) {
    log::warn("cannot set up client connection", {{"client", raw->client().ip}});
    raw->close("transport setup failed");
  }
}

void Worker::remove(DownstreamConnection* conn) {
  std::unique_ptr<DownstreamConnection> owned = std::move(*conn->self);
  conns_.erase(conn->self);
  connections_.fetch_sub(1, std::memory_order_relaxed);
  loop_.defer_delete(std::move(owned));
  maybe_exit();
}

std::string Worker::next_request_id() {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng_()),
                static_cast<unsigned long long>(rng_()));
  return std::string(buf, 32);
}

void Worker::drain() {
  draining_ = true;
  listeners_.clear();
  pool_.clear();
  std::vector<DownstreamConnection*> all;
  for (auto& c : conns_) {
    all.push_back(c.get());
  }
  for (auto* c : all) {
    c->drain();
  }
  maybe_exit();
}

void Worker::stop() { loop_.exit(); }

void Worker::maybe_exit() {
  if (draining_ && conns_.empty()) {
    loop_.exit();
  }
}

}  // namespace fd::proxy
