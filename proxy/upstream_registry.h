#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/event_loop.h"
#include "proxy/upstream_server.h"

namespace fd::proxy {

// The servers of every upstream, kept current by re-resolving host names every
// resolve_interval and across reloads. A server whose address keeps resolving, or that a new
// configuration keeps in the same upstream, keeps its UpstreamServer (and so its health and
// counters); a vanished one is retired (see take_retired()). Main thread only.
class UpstreamRegistry {
 public:
  // Called with a group's new list whenever its set of addresses changes.
  using Publish = std::function<void(size_t group, const ServerListPtr& servers)>;

  UpstreamRegistry(EventLoop& loop, Publish publish);
  ~UpstreamRegistry();

  // Resolves every upstream of |config| once (names that do not resolve are logged, not
  // fatal) and starts the re-resolution timers. Publishes each group's first list. |config|
  // must outlive the registry or the next reconfigure().
  void start(const config::Config& config);
  // Switches to the upstreams of |config| (a reload): a server that the upstream of the same
  // name had before, with the same address and weight, is kept; the others are retired.
  // Does not publish: the caller hands the lists to the workers with the new
  // snapshot. Same lifetime rule for |config| as start().
  void reconfigure(const config::Config& config);

  const ServerListPtr& servers(size_t group) const { return groups_[group]->servers; }
  // The servers dropped from the lists since the last call. The caller marks them removed once
  // every worker has the new lists: marked earlier, a worker still on the old list would find
  // no available server.
  std::vector<std::shared_ptr<UpstreamServer>> take_retired();
  size_t group_count() const { return groups_.size(); }

 private:
  struct Group {
    const config::Upstream* settings;
    ServerListPtr servers;
    std::vector<std::string> resolve_errors;  // last error per server spec, "" when fine
    std::unique_ptr<Timer> timer;
  };

  void add_groups(const config::Config& config);
  // Starts re-resolving group |index| if it names servers by host name.
  void schedule(size_t index);
  // Resolves group |index| again; true when its list of servers changed.
  bool refresh(size_t index);

  EventLoop& loop_;
  Publish publish_;
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<std::shared_ptr<UpstreamServer>> retired_;
};

}  // namespace fd::proxy
