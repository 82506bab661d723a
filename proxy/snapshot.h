#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "proxy/balancer.h"
#include "proxy/router.h"
#include "proxy/stats.h"

namespace fd::proxy {

enum class Balance { round_robin, least_conn, random_two };

// The round-robin position and counters of one upstream. A reload hands them on to the new
// snapshot's upstream of the same name, so counters do not restart and the rotation goes on.
struct GroupCounters {
  RoundRobin round_robin;
  std::atomic<uint64_t> retries{0};
  StatusCounters unserved;  // answers made with no server (503: none available)
};

// An upstream as the data path sees it: its settings and its counters. Its servers change at
// run time (re-resolution, reload) and reach each worker separately.
struct UpstreamGroup {
  const config::Upstream* settings;  // points into the snapshot's Config
  Balance balance = Balance::round_robin;
  std::shared_ptr<GroupCounters> counters;
};

// Everything a request needs from the configuration, built and validated on the main thread and
// then shared read-only (shared_ptr<const RuntimeSnapshot>) by every worker. A connection keeps
// the snapshot it was accepted under until it closes. Certificates are not here: they change
// without a new configuration (ACME), so workers hold the TlsContextSet separately.
class RuntimeSnapshot {
 public:
  // Builds the router and the upstream groups. An upstream that |previous| (may be null) also
  // has, by name, shares its counters. |generation| numbers the configurations loaded since
  // start (1 = the first). Main thread.
  static Result<std::shared_ptr<const RuntimeSnapshot>> build(
      std::shared_ptr<const config::Config> config, const RuntimeSnapshot* previous,
      uint64_t generation);

  const config::Config& config() const { return *config_; }
  const Router& router() const { return router_; }
  // Counters and the round-robin position are atomics, mutable through a const snapshot.
  const UpstreamGroup& group(size_t i) const { return *groups_[i]; }
  size_t group_count() const { return groups_.size(); }
  // Index of the upstream named |name|, if this snapshot has one.
  std::optional<size_t> find_group(const std::string& name) const;
  uint64_t generation() const { return generation_; }
  // Port of the first TLS listener, used by redirect_https; 443 when there is none.
  uint16_t https_port() const { return https_port_; }

 private:
  RuntimeSnapshot(std::shared_ptr<const config::Config> config, Router router);

  std::shared_ptr<const config::Config> config_;
  Router router_;
  std::vector<std::unique_ptr<UpstreamGroup>> groups_;
  uint16_t https_port_ = 443;
  uint64_t generation_ = 0;
};

}  // namespace fd::proxy
