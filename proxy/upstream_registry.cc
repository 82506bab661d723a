#include "proxy/upstream_registry.h"

#include <unordered_map>
#include <utility>

#include "common/log.h"
#include "proxy/resolver.h"

namespace fd::proxy {

UpstreamRegistry::UpstreamRegistry(EventLoop& loop, Publish publish)
    : loop_(loop), publish_(std::move(publish)) {}

UpstreamRegistry::~UpstreamRegistry() = default;

void UpstreamRegistry::add_groups(const config::Config& config) {
  for (const auto& up : config.upstreams) {
    auto g = std::make_unique<Group>();
    g->settings = &up;
    g->servers = std::make_shared<const ServerList>();
    g->resolve_errors.assign(up.servers.size(), std::string());
    groups_.push_back(std::move(g));
  }
}

void UpstreamRegistry::start(const config::Config& config) {
  add_groups(config);
  for (size_t i = 0; i < groups_.size(); ++i) {
    refresh(i);
    publish_(i, groups_[i]->servers);
    schedule(i);
  }
}

void UpstreamRegistry::reconfigure(const config::Config& config) {
  std::vector<std::unique_ptr<Group>> before = std::move(groups_);
  groups_.clear();
  add_groups(config);
  for (size_t i = 0; i < groups_.size(); ++i) {
    Group& g = *groups_[i];
    for (auto& old : before) {
      if (old && old->settings->name == g.settings->name) {
        // refresh() reuses what it finds here, and retires what it does not keep.
        g.servers = old->servers;
        old.reset();
        break;
      }
    }
    refresh(i);
    schedule(i);
  }
  for (const auto& old : before) {
    for (const auto& s : old ? *old->servers : ServerList()) {
      retired_.push_back(s);
    }
  }
}

std::vector<std::shared_ptr<UpstreamServer>> UpstreamRegistry::take_retired() {
  return std::exchange(retired_, {});
}

void UpstreamRegistry::schedule(size_t i) {
  Group& g = *groups_[i];
  bool names = false;
  for (const auto& spec : g.settings->servers) {
    names = names || !is_ip_literal(spec.endpoint.host);
  }
  if (!names) {
    return;
  }
  g.timer = std::make_unique<Timer>(loop_, [this, i] {
    if (refresh(i)) {
      publish_(i, groups_[i]->servers);
    }
    groups_[i]->timer->arm(groups_[i]->settings->resolve_interval);
  });
  g.timer->arm(g.settings->resolve_interval);
}

bool UpstreamRegistry::refresh(size_t index) {
  Group& g = *groups_[index];
  std::unordered_map<std::string, std::shared_ptr<UpstreamServer>> current;
  for (const auto& s : *g.servers) {
    current.emplace(s->address, s);
  }
  auto next = std::make_shared<ServerList>();
  for (size_t si = 0; si < g.settings->servers.size(); ++si) {
    const config::ServerSpec& spec = g.settings->servers[si];
    auto addresses = resolve(spec.endpoint);
    std::string error = addresses ? std::string() : addresses.error().message;
    if (error != g.resolve_errors[si]) {
      if (error.empty()) {
        log::info("upstream server resolves again",
                  {{"upstream", g.settings->name}, {"server", spec.address}});
      } else {
        log::warn("cannot resolve upstream server; retrying",
                  {{"upstream", g.settings->name}, {"server", spec.address}, {"reason", error}});
      }
      g.resolve_errors[si] = error;
    }
    if (!addresses) {
      // Keep what this spec resolved to before: a DNS hiccup must not empty the group.
      for (const auto& s : *g.servers) {
        if (s->name == spec.address) {
          next->push_back(s);
        }
      }
      continue;
    }
    for (auto& a : *addresses) {
      bool listed = false;
      for (const auto& s : *next) {
        listed = listed || s->address == a.text;
      }
      if (listed) {
        continue;
      }
      auto it = current.find(a.text);
      if (it != current.end() && it->second->weight == spec.weight) {
        next->push_back(it->second);
        continue;
      }
      auto server = std::make_shared<UpstreamServer>();
      server->name = spec.address;
      server->address = a.text;
      server->addr = a.addr;
      server->addr_len = a.len;
      server->weight = spec.weight;
      next->push_back(std::move(server));
    }
  }
  // The same servers in another order is no change: DNS servers (Docker's among them) shuffle
  // their answers, and republishing on each shuffle would log and reset balancing for nothing.
  bool changed = next->size() != g.servers->size();
  for (size_t i = 0; !changed && i < next->size(); ++i) {
    changed = current.count((*next)[i]->address) == 0 ||
              current.at((*next)[i]->address) != (*next)[i];
  }
  if (!changed) {
    return false;
  }
  for (const auto& old : *g.servers) {
    bool kept = false;
    for (const auto& s : *next) {
      kept = kept || s == old;
    }
    if (!kept) {
      retired_.push_back(old);
    }
  }
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : *next) {
    list.push_back(s->address);
  }
  g.servers = std::move(next);
  log::info("upstream servers", {{"upstream", g.settings->name}, {"servers", list}});
  return true;
}

}  // namespace fd::proxy
