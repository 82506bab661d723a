#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>

#include "config/config.h"
#include "proxy/event_loop.h"
#include "proxy/upstream_server.h"

namespace fd::proxy {

// Active health checks, one session per server, all on the main thread's loop (one checker per
// process, not per worker). Results reach the workers through UpstreamServer::health, an
// atomic they read on every pick.
//
// Rule: a new server is probed at once; until its first result it is "unknown" and takes
// traffic. The first result sets up or down at once. After that, unhealthy_after consecutive
// failures take it down and healthy_after consecutive passes bring it back (which also clears
// its passive failures).
class HealthChecker {
 public:
  explicit HealthChecker(EventLoop& loop);
  ~HealthChecker();

  // Makes the checked servers of upstream |group| equal to |servers|: new ones start at once,
  // vanished ones stop. No-op when the upstream has no health_check. Main thread.
  void sync(size_t group, const config::Upstream& settings, const ServerList& servers);
  // Stops every session (a reload renumbers the groups; sync() then starts them again). The
  // servers keep their health, so a server already checked resumes after a jittered interval.
  void clear();

 private:
  class Probe;
  class Session;

  EventLoop& loop_;
  std::mt19937_64 rng_;
  // Keyed by group, then server; a session holds its server alive.
  std::map<std::pair<size_t, const UpstreamServer*>, std::unique_ptr<Session>> sessions_;
};

}  // namespace fd::proxy
