#include "proxy/router.h"

#include "proxy/header_rewrite.h"

namespace fd::proxy {

Router::Router(std::vector<Rule> rules) : rules_(std::move(rules)) {}

std::optional<Router> Router::from_config(const std::vector<config::Route>& routes,
                                          const std::vector<config::Upstream>& upstreams) {
  std::vector<Rule> rules;
  for (const auto& route : routes) {
    std::optional<size_t> group;
    for (size_t i = 0; i < upstreams.size(); ++i) {
      if (upstreams[i].name == route.upstream) {
        group = i;
        break;
      }
    }
    if (!group) {
      return std::nullopt;
    }
    rules.push_back(Rule{normalize_host(route.match.host), route.match.path_prefix, *group});
  }
  return Router(std::move(rules));
}

bool Router::host_matches(const Rule& rule, std::string_view host) {
  if (rule.host.empty()) {
    return true;
  }
  if (rule.host.size() > 2 && rule.host[0] == '*' && rule.host[1] == '.') {
    std::string_view suffix = std::string_view(rule.host).substr(1);
    return host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix;
  }
  return host == rule.host;
}

std::optional<size_t> Router::route(std::string_view host, std::string_view path) const {
  for (const auto& rule : rules_) {
    if (host_matches(rule, host) && path.substr(0, rule.path_prefix.size()) == rule.path_prefix) {
      return rule.group;
    }
  }
  return std::nullopt;
}

}  // namespace fd::proxy
