#include "proxy/snapshot.h"

namespace fd::proxy {

RuntimeSnapshot::RuntimeSnapshot(std::shared_ptr<const config::Config> config, Router router)
    : config_(std::move(config)), router_(std::move(router)) {}

Result<std::shared_ptr<const RuntimeSnapshot>> RuntimeSnapshot::build(
    std::shared_ptr<const config::Config> config, const RuntimeSnapshot* previous,
    uint64_t generation) {
  auto router = Router::from_config(config->routes, config->upstreams);
  if (!router) {
    return make_error(Errc::internal, "a route names an unknown upstream");
  }
  std::shared_ptr<RuntimeSnapshot> snap(new RuntimeSnapshot(config, std::move(*router)));
  snap->generation_ = generation;
  for (const auto& upstream : config->upstreams) {
    auto group = std::make_unique<UpstreamGroup>();
    group->settings = &upstream;
    group->balance = upstream.balance == "least_conn"   ? Balance::least_conn
                     : upstream.balance == "random_two" ? Balance::random_two
                                                        : Balance::round_robin;
    std::optional<size_t> before = previous ? previous->find_group(upstream.name) : std::nullopt;
    group->counters =
        before ? previous->group(*before).counters : std::make_shared<GroupCounters>();
    snap->groups_.push_back(std::move(group));
  }
  for (const auto& l : config->listeners) {
    if (l.tls) {
      snap->https_port_ = l.endpoint.port;
      break;
    }
  }
  return std::shared_ptr<const RuntimeSnapshot>(std::move(snap));
}

std::optional<size_t> RuntimeSnapshot::find_group(const std::string& name) const {
  for (size_t i = 0; i < groups_.size(); ++i) {
    if (groups_[i]->settings->name == name) {
      return i;
    }
  }
  return std::nullopt;
}

}  // namespace fd::proxy
