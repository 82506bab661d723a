#include "tests/unit/config/test_support.h"

#include <gtest/gtest.h>

#include <optional>

namespace fd::config::test {

Environment fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

std::vector<std::string> errors_of(const LoadResult& result) {
  std::vector<std::string> out;
  for (const Diagnostic& d : result.errors) {
    EXPECT_EQ(d.file, "test.yaml");
    out.push_back(std::to_string(d.line) + ":" + std::to_string(d.col) + ": " + d.message);
  }
  return out;
}

Config valid_config() {
  Config cfg;
  cfg.source = "test.yaml";
  Listener listener;
  listener.address = "0.0.0.0:8080";
  listener.endpoint = HostPort{"0.0.0.0", 8080};
  listener.mark = {2, 5};
  cfg.listeners.push_back(listener);
  Upstream upstream;
  upstream.name = "app";
  upstream.mark = {4, 3};
  ServerSpec server;
  server.address = "app-1:8000";
  server.endpoint = HostPort{"app-1", 8000};
  server.mark = {5, 16};
  upstream.servers.push_back(server);
  cfg.upstreams.push_back(upstream);
  Route route;
  route.upstream = "app";
  route.mark = {7, 5};
  route.upstream_mark = {7, 15};
  cfg.routes.push_back(route);
  return cfg;
}

}  // namespace fd::config::test
