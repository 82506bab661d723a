#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace fd::proxy {

// First-match routing on host and path prefix. Immutable after construction; shared by workers.
class Router {
 public:
  struct Rule {
    std::string host;  // lowercase; "" = any; "*.example.com" = any name ending in ".example.com"
    std::string path_prefix;
    size_t group;  // index of the upstream group
  };

  explicit Router(std::vector<Rule> rules);

  // Builds rules from |routes|, mapping upstream names to their index in |upstreams|. Names
  // were checked by config validation, so an unknown one is an internal error (nullopt).
  static std::optional<Router> from_config(const std::vector<config::Route>& routes,
                                           const std::vector<config::Upstream>& upstreams);

  // |host| is normalized (lowercase, no port). Returns the group of the first matching rule.
  std::optional<size_t> route(std::string_view host, std::string_view path) const;

 private:
  static bool host_matches(const Rule& rule, std::string_view host);

  std::vector<Rule> rules_;
};

}  // namespace fd::proxy
