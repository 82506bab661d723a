#include "proxy/upstream_pool.h"

#include <algorithm>
#include <unordered_set>

namespace fd::proxy {

UpstreamPool::~UpstreamPool() {
  clear();
}

std::unique_ptr<UpstreamConnection> UpstreamPool::take(const UpstreamServer& server) {
  auto it = idle_.find(&server);
  if (it == idle_.end() || it->second.empty()) {
    return nullptr;
  }
  auto conn = std::move(it->second.back());
  it->second.pop_back();
  if (it->second.empty()) {
    idle_.erase(it);
  }
  return conn;
}

void UpstreamPool::put(std::unique_ptr<UpstreamConnection> conn, uint32_t max_idle,
                       std::chrono::milliseconds idle_timeout) {
  auto& list = idle_[&conn->server()];
  // A request that outlived its server's removal must not park a connection nobody takes.
  bool removed = conn->server().removed.load(std::memory_order_relaxed);
  if (!conn->reusable() || removed || list.size() >= max_idle) {
    if (list.empty()) {
      idle_.erase(&conn->server());
    }
    UpstreamConnection::dispose(loop_, std::move(conn));
    return;
  }
  conn->park(this, idle_timeout);
  list.push_back(std::move(conn));
}

void UpstreamPool::clear() {
  for (auto& [server, list] : idle_) {
    for (auto& conn : list) {
      UpstreamConnection::dispose(loop_, std::move(conn));
    }
  }
  idle_.clear();
}

void UpstreamPool::keep_only(const std::vector<ServerListPtr>& lists) {
  std::unordered_set<const UpstreamServer*> listed;
  for (const auto& list : lists) {
    for (const auto& s : *list) {
      listed.insert(s.get());
    }
  }
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (listed.count(it->first) != 0) {
      ++it;
      continue;
    }
    for (auto& conn : it->second) {
      UpstreamConnection::dispose(loop_, std::move(conn));
    }
    it = idle_.erase(it);
  }
}

size_t UpstreamPool::idle_count() const {
  size_t n = 0;
  for (const auto& [server, list] : idle_) {
    n += list.size();
  }
  return n;
}

void UpstreamPool::on_upstream_failure(UpstreamFailure, const std::string&) {
  // The connection that failed is not named; failures of idle connections are rare (server
  // closed it, idle timeout), so sweep every failed one out.
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    for (auto& conn : list) {
      if (conn->failed()) {
        UpstreamConnection::dispose(loop_, std::move(conn));
      }
    }
    list.erase(std::remove(list.begin(), list.end(), nullptr), list.end());
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
}

}  // namespace fd::proxy
