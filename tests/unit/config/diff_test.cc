#include "config/diff.h"

#include <gtest/gtest.h>

#include "tests/unit/config/test_support.h"

namespace fd::config {
namespace {

using test::valid_config;
using Names = std::vector<std::string>;

TEST(ConfigDiff, IdenticalConfigsDifferInNothing) {
  ConfigDiff d = diff(valid_config(), valid_config());
  EXPECT_TRUE(d.listeners_added.empty());
  EXPECT_TRUE(d.listeners_removed.empty());
  EXPECT_TRUE(d.listeners_changed.empty());
  EXPECT_TRUE(d.upstreams_added.empty());
  EXPECT_TRUE(d.upstreams_removed.empty());
  EXPECT_TRUE(d.upstreams_changed.empty());
  EXPECT_FALSE(d.routes_changed);
  EXPECT_FALSE(d.tls_changed);
  EXPECT_FALSE(d.acme_changed);
  EXPECT_TRUE(d.restart_needed.empty());
}

TEST(ConfigDiff, MovedLinesAreNotChanges) {
  Config after = valid_config();
  after.listeners[0].mark = {20, 1};
  after.upstreams[0].mark = {30, 1};
  after.upstreams[0].servers[0].mark = {31, 1};
  after.routes[0].mark = {40, 1};
  ConfigDiff d = diff(valid_config(), after);
  EXPECT_TRUE(d.listeners_changed.empty());
  EXPECT_TRUE(d.upstreams_changed.empty());
  EXPECT_FALSE(d.routes_changed);
}

TEST(ConfigDiff, ListenersMatchByEndpointNotText) {
  Config after = valid_config();
  after.listeners[0].address = "0.0.0.0:08080";  // same endpoint, written differently
  Listener extra;
  extra.address = "[::]:8443";
  extra.endpoint = HostPort{"::", 8443};
  extra.tls = true;
  after.listeners.push_back(extra);
  ConfigDiff d = diff(valid_config(), after);
  EXPECT_EQ(d.listeners_added, Names{"[::]:8443"});
  EXPECT_TRUE(d.listeners_removed.empty());

  ConfigDiff back = diff(after, valid_config());
  EXPECT_EQ(back.listeners_removed, Names{"[::]:8443"});
}

TEST(ConfigDiff, ListenerThatTurnsIntoARedirectIsChanged) {
  Config after = valid_config();
  after.listeners[0].redirect_https = true;
  EXPECT_EQ(diff(valid_config(), after).listeners_changed, Names{"0.0.0.0:8080"});
  Config port = after;
  port.listeners[0].https_port = 443;
  EXPECT_EQ(diff(after, port).listeners_changed, Names{"0.0.0.0:8080"});
}

TEST(ConfigDiff, UpstreamsAddedRemovedAndChanged) {
  Config before = valid_config();
  Upstream old_one;
  old_one.name = "old";
  before.upstreams.push_back(old_one);

  Config after = valid_config();
  after.upstreams[0].servers[0].weight = 3;
  Upstream new_one;
  new_one.name = "new";
  after.upstreams.push_back(new_one);

  ConfigDiff d = diff(before, after);
  EXPECT_EQ(d.upstreams_added, Names{"new"});
  EXPECT_EQ(d.upstreams_removed, Names{"old"});
  EXPECT_EQ(d.upstreams_changed, Names{"app"});
}

TEST(ConfigDiff, HealthCheckSettingsOnlyCountWhenEnabled) {
  Config before = valid_config();
  Config after = valid_config();
  after.upstreams[0].health_check.interval = Duration{100};
  EXPECT_TRUE(diff(before, after).upstreams_changed.empty());
  before.upstreams[0].health_check_enabled = true;
  after.upstreams[0].health_check_enabled = true;
  EXPECT_EQ(diff(before, after).upstreams_changed, Names{"app"});
}

TEST(ConfigDiff, RouteOrderMatters) {
  Config before = valid_config();
  Route api;
  api.match.path_prefix = "/api/";
  api.upstream = "app";
  before.routes.push_back(api);
  Config after = before;
  std::swap(after.routes[0], after.routes[1]);
  EXPECT_TRUE(diff(before, after).routes_changed);
}

TEST(ConfigDiff, AcmeDomainsAddedAndRemoved) {
  Config before = valid_config();
  before.tls.acme_enabled = true;
  before.tls.acme.domains = {"a.example", "b.example"};
  Config after = before;
  after.tls.acme.domains = {"b.example", "c.example"};
  ConfigDiff d = diff(before, after);
  EXPECT_TRUE(d.acme_changed);
  EXPECT_EQ(d.acme_domains_added, Names{"c.example"});
  EXPECT_EQ(d.acme_domains_removed, Names{"a.example"});

  // Turning ACME off removes every name; settings of a disabled section do not count.
  Config off = before;
  off.tls.acme_enabled = false;
  EXPECT_EQ(diff(before, off).acme_domains_removed, (Names{"a.example", "b.example"}));
  Config off_changed = off;
  off_changed.tls.acme.email = "x@example.com";
  EXPECT_FALSE(diff(off, off_changed).acme_changed);
}

TEST(ConfigDiff, CertificateFilesAndWorkers) {
  Config before = valid_config();
  Config after = valid_config();
  after.tls.certificates.push_back(Certificate{"site.crt", "site.key", {}});
  after.workers = 4;
  ConfigDiff d = diff(before, after);
  EXPECT_TRUE(d.tls_changed);
  EXPECT_EQ(d.restart_needed, Names{"workers"});
  after.user = "frontdoor";
  EXPECT_EQ(diff(before, after).restart_needed, (Names{"user", "workers"}));
}

}  // namespace
}  // namespace fd::config
