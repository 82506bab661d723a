#pragma once

#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "proxy/event_loop.h"
#include "proxy/upstream_connection.h"

namespace fd::proxy {

// One worker's idle keep-alive connections, per upstream server. Worker thread only.
class UpstreamPool : private UpstreamConnection::Listener {
 public:
  explicit UpstreamPool(EventLoop& loop) : loop_(loop) {}
  ~UpstreamPool() override;

  // The most recently parked idle connection to |server|, or nullptr.
  std::unique_ptr<UpstreamConnection> take(const UpstreamServer& server);

  // Parks |conn| if it is reusable and fewer than |max_idle| connections to its server are
  // idle; otherwise it is closed. Idle ones close after |idle_timeout|.
  void put(std::unique_ptr<UpstreamConnection> conn, uint32_t max_idle,
           std::chrono::milliseconds idle_timeout);

  // Closes every idle connection (shutdown).
  void clear();
  // Closes idle connections to servers in none of |lists| (the worker's server lists after a
  // re-resolution or a reload).
  void keep_only(const std::vector<ServerListPtr>& lists);

  size_t idle_count() const;

 private:
  void on_upstream_failure(UpstreamFailure failure, const std::string& reason) override;

  EventLoop& loop_;
  std::unordered_map<const UpstreamServer*, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace fd::proxy
