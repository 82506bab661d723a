#include "config/load.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "tests/unit/config/test_certs.h"
#include "tests/unit/config/test_support.h"

namespace fd::config {
namespace {

using test::errors_of;
using test::fake_env;

using namespace std::chrono_literals;
using ::testing::ElementsAre;

LoadResult load(const std::string& yaml, const Environment& env = fake_env()) {
  return load_string(yaml, "test.yaml", env);
}

std::vector<std::string> load_errors(const std::string& yaml, const Environment& env = fake_env()) {
  LoadResult result = load(yaml, env);
  EXPECT_FALSE(result.config.has_value());
  return errors_of(result);
}

// The smallest valid config; tests append a key or swap one line.
const std::string MINIMAL = R"(listen:
  - address: "127.0.0.1:8080"
upstreams:
  app:
    servers: ["127.0.0.1:9000"]
routes:
  - upstream: app
)";

Config load_ok(const std::string& yaml, const Environment& env = fake_env()) {
  LoadResult result = load(yaml, env);
  EXPECT_THAT(errors_of(result), ElementsAre());
  return result.config.value_or(Config{});
}

TEST(LoadString, MinimalConfigGetsDefaults) {
  Config cfg = load_ok(MINIMAL);
  EXPECT_EQ(cfg.source, "test.yaml");
  ASSERT_EQ(cfg.listeners.size(), 1u);
  const Listener& listener = cfg.listeners[0];
  EXPECT_EQ(listener.address, "127.0.0.1:8080");
  EXPECT_EQ(listener.endpoint.host, "127.0.0.1");
  EXPECT_EQ(listener.endpoint.port, 8080);
  EXPECT_FALSE(listener.tls);
  EXPECT_FALSE(listener.redirect_https);
  EXPECT_EQ(cfg.tls.min_version, "1.2");
  EXPECT_TRUE(cfg.tls.certificates.empty());
  ASSERT_EQ(cfg.upstreams.size(), 1u);
  const Upstream& up = cfg.upstreams[0];
  EXPECT_EQ(up.name, "app");
  EXPECT_EQ(up.balance, "round_robin");
  EXPECT_EQ(up.resolve_interval, 5s);
  EXPECT_FALSE(up.health_check_enabled);
  EXPECT_EQ(up.max_fails, 1u);
  EXPECT_EQ(up.fail_window, 10s);
  EXPECT_EQ(up.fail_timeout, 10s);
  EXPECT_EQ(up.retries, 2u);
  EXPECT_EQ(up.retry_timeout, 10s);
  EXPECT_EQ(up.connect_timeout, 3s);
  EXPECT_EQ(up.response_timeout, 60s);
  EXPECT_EQ(up.max_idle_connections, 256u);
  EXPECT_EQ(up.idle_timeout, 60s);
  ASSERT_EQ(up.servers.size(), 1u);
  EXPECT_EQ(up.servers[0].address, "127.0.0.1:9000");
  EXPECT_EQ(up.servers[0].endpoint.port, 9000);
  EXPECT_EQ(up.servers[0].weight, 1);
  ASSERT_EQ(cfg.routes.size(), 1u);
  EXPECT_EQ(cfg.routes[0].match.host, "");
  EXPECT_EQ(cfg.routes[0].match.path_prefix, "/");
  EXPECT_EQ(cfg.routes[0].upstream, "app");
  EXPECT_FALSE(cfg.admin.enabled);
  EXPECT_EQ(cfg.log.level, "info");
  EXPECT_TRUE(cfg.log.access);
  EXPECT_EQ(cfg.limits.max_connections, 10000u);
  EXPECT_EQ(cfg.limits.header_timeout, 10s);
  EXPECT_EQ(cfg.limits.idle_timeout, 60s);
  EXPECT_EQ(cfg.limits.max_header_bytes, 65536u);
  EXPECT_EQ(cfg.limits.max_headers, 100u);
  EXPECT_EQ(cfg.limits.max_requests_per_connection, 1000u);
  EXPECT_EQ(cfg.limits.max_body_bytes, 0u);
  EXPECT_EQ(cfg.shutdown_timeout, 10s);
  EXPECT_EQ(cfg.shutdown_delay, 0s);
  EXPECT_EQ(cfg.workers, 0u);
}

TEST(LoadString, MarksAreOneBased) {
  Config cfg = load_ok(MINIMAL);
  EXPECT_EQ(cfg.listeners[0].mark.line, 2);
  EXPECT_EQ(cfg.listeners[0].mark.col, 5);
  EXPECT_EQ(cfg.upstreams[0].mark.line, 4);
  EXPECT_EQ(cfg.upstreams[0].mark.col, 3);
  EXPECT_EQ(cfg.upstreams[0].servers[0].mark.line, 5);
  EXPECT_EQ(cfg.upstreams[0].servers[0].mark.col, 15);
  EXPECT_EQ(cfg.routes[0].mark.line, 7);
  EXPECT_EQ(cfg.routes[0].mark.col, 5);
  EXPECT_EQ(cfg.routes[0].upstream_mark.line, 7);
  EXPECT_EQ(cfg.routes[0].upstream_mark.col, 15);
}

TEST(LoadString, FullConfigRoundTrip) {
  test::TempDir dir;
  auto key = test::make_key();
  auto cert = test::make_certificate(key.get(), "localhost");
  std::string cert_path = dir.write("site.crt", test::to_pem(cert.get()));
  std::string key_path = dir.write("site.key", test::to_pem(key.get()));
  Config cfg = load_ok(R"(listen:
  - address: "[::]:8443"
    tls: true
  - address: "*:8080"
    redirect_https: true
tls:
  min_version: "1.3"
  certificates:
    - cert: ${CERT}
      key: ${KEY}
upstreams:
  web:
    servers: ["web-1:8000", {address: "web-2:8000", weight: 3}]
    balance: round_robin
    connect_timeout: 250ms
    response_timeout: 2m
    max_idle_connections: 0
    idle_timeout: 1h
  api:
    servers:
      - address: "[::1]:9000"
routes:
  - match: {host: "api.example.com", path_prefix: "/v1/"}
    upstream: api
  - match:
      host: "*.example.com"
    upstream: web
log:
  level: debug
  access: false
limits:
  max_connections: 5
  header_timeout: 2s
  idle_timeout: 30d
  max_header_bytes: 1024
  max_headers: 20
  max_requests_per_connection: 7
  max_body_bytes: 18446744073709551615
shutdown_timeout: 0s
shutdown_delay: 5s
workers: 16
)",
                       fake_env({{"CERT", cert_path}, {"KEY", key_path}}));
  ASSERT_EQ(cfg.listeners.size(), 2u);
  EXPECT_EQ(cfg.listeners[0].endpoint.host, "::");
  EXPECT_EQ(cfg.listeners[0].endpoint.port, 8443);
  EXPECT_TRUE(cfg.listeners.at(0).tls);
  EXPECT_EQ(cfg.listeners[1].endpoint.host, "");
  EXPECT_TRUE(cfg.listeners[1].redirect_https);
  EXPECT_EQ(cfg.tls.min_version, "1.3");
  ASSERT_EQ(cfg.tls.certificates.size(), 1u);
  EXPECT_EQ(cfg.tls.certificates[0].cert, cert_path);
  EXPECT_EQ(cfg.tls.certificates[0].key, key_path);
  EXPECT_EQ(cfg.tls.certificates[0].mark.line, 9);
  EXPECT_EQ(cfg.tls.certificates[0].mark.col, 7);
  ASSERT_EQ(cfg.upstreams.size(), 2u);
  const Upstream& web = cfg.upstreams[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.connect_timeout, 250ms);
  EXPECT_EQ(web.response_timeout, 2min);
  EXPECT_EQ(web.max_idle_connections, 0u);
  EXPECT_EQ(web.idle_timeout, 1h);
  ASSERT_EQ(web.servers.size(), 2u);
  EXPECT_EQ(web.servers[1].address, "web-2:8000");
  EXPECT_EQ(web.servers[1].weight, 3);
  EXPECT_EQ(web.servers[1].mark.line, 13);
  EXPECT_EQ(web.servers[1].mark.col, 29);
  EXPECT_EQ(cfg.upstreams[1].name, "api");
  EXPECT_EQ(cfg.upstreams[1].servers[0].endpoint.host, "::1");
  ASSERT_EQ(cfg.routes.size(), 2u);
  EXPECT_EQ(cfg.routes[0].match.host, "api.example.com");
  EXPECT_EQ(cfg.routes[0].match.path_prefix, "/v1/");
  EXPECT_EQ(cfg.routes[0].upstream, "api");
  EXPECT_EQ(cfg.routes[1].match.host, "*.example.com");
  EXPECT_EQ(cfg.routes[1].match.path_prefix, "/");
  EXPECT_EQ(cfg.routes[1].upstream_mark.line, 27);
  EXPECT_EQ(cfg.routes[1].upstream_mark.col, 15);
  EXPECT_EQ(cfg.log.level, "debug");
  EXPECT_FALSE(cfg.log.access);
  EXPECT_EQ(cfg.limits.max_connections, 5u);
  EXPECT_EQ(cfg.limits.header_timeout, 2s);
  EXPECT_EQ(cfg.limits.idle_timeout, 30 * 24h);
  EXPECT_EQ(cfg.limits.max_header_bytes, 1024u);
  EXPECT_EQ(cfg.limits.max_headers, 20u);
  EXPECT_EQ(cfg.limits.max_requests_per_connection, 7u);
  EXPECT_EQ(cfg.limits.max_body_bytes, UINT64_MAX);
  EXPECT_EQ(cfg.shutdown_timeout, 0s);
  EXPECT_EQ(cfg.shutdown_delay, 5s);
  EXPECT_EQ(cfg.workers, 16u);
}

TEST(LoadString, UpstreamsKeepYamlOrder) {
  Config cfg = load_ok(R"(listen: [{address: ":80"}]
upstreams:
  zeta: {servers: ["z:1"]}
  alpha: {servers: ["a:1"]}
  mid: {servers: ["m:1"]}
routes: [{upstream: alpha}]
)");
  ASSERT_EQ(cfg.upstreams.size(), 3u);
  EXPECT_EQ(cfg.upstreams[0].name, "zeta");
  EXPECT_EQ(cfg.upstreams[1].name, "alpha");
  EXPECT_EQ(cfg.upstreams[2].name, "mid");
}

TEST(LoadString, ServerWeights) {
  Config cfg = load_ok(R"(listen: [{address: ":80"}]
upstreams:
  app:
    servers:
      - "a:1"
      - {address: "b:1"}
      - {address: "c:1", weight: 1000}
      - address: "d:1"
        weight: 7
routes: [{upstream: app}]
)");
  const auto& servers = cfg.upstreams[0].servers;
  ASSERT_EQ(servers.size(), 4u);
  EXPECT_EQ(servers[0].weight, 1);
  EXPECT_EQ(servers[1].weight, 1);
  EXPECT_EQ(servers[2].weight, 1000);
  EXPECT_EQ(servers[3].weight, 7);
  EXPECT_EQ(servers[3].address, "d:1");
  EXPECT_EQ(servers[3].mark.line, 8);
  EXPECT_EQ(servers[3].mark.col, 9);
}

TEST(LoadString, BadWeights) {
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80"}]
upstreams:
  app:
    servers:
      - {address: "a:1", weight: 0}
      - {address: "b:1", weight: 1001}
      - {address: "c:1", weight: -1}
      - {address: "d:1", weight: 1.5}
routes: [{upstream: app}]
)"),
              ElementsAre("5:34: expected an integer from 1 to 1000 for \"weight\", got \"0\"",
                          "6:34: expected an integer from 1 to 1000 for \"weight\", got \"1001\"",
                          "7:34: expected an integer from 1 to 1000 for \"weight\", got \"-1\"",
                          "8:34: expected an integer from 1 to 1000 for \"weight\", got \"1.5\""));
}

TEST(LoadString, Workers) {
  EXPECT_EQ(load_ok(MINIMAL + "workers: auto\n").workers, 0u);
  EXPECT_EQ(load_ok(MINIMAL + "workers: 1\n").workers, 1u);
  EXPECT_EQ(load_ok(MINIMAL + "workers: \"1024\"\n").workers, 1024u);
  const std::string expected =
      "8:10: expected \"auto\" or an integer from 1 to 1024 for \"workers\"";
  EXPECT_THAT(load_errors(MINIMAL + "workers: 0\n"), ElementsAre(expected + ", got \"0\""));
  EXPECT_THAT(load_errors(MINIMAL + "workers: 1025\n"), ElementsAre(expected + ", got \"1025\""));
  EXPECT_THAT(load_errors(MINIMAL + "workers: Auto\n"), ElementsAre(expected + ", got \"Auto\""));
  EXPECT_THAT(load_errors(MINIMAL + "workers: [1]\n"), ElementsAre(expected + ", got a sequence"));
}

TEST(LoadString, UnknownKeysAtEveryLevel) {
  EXPECT_THAT(load_errors(R"(listen:
  - address: ":443"
    tls: true
    http3: true
tls:
  ocsp: {}
  certificates:
    - {cert: a, key: b, chain: c}
upstreams:
  app:
    servers: [{address: "a:1", wieght: 2}]
    health_check: {path: /, method: HEAD}
    retry: 3
routes:
  - match: {host: x, path: /}
    upstream: app
log: {level: info, format: json}
limits: {body_timeout_ms: 60}
admin:
  address: "127.0.0.1:9901"
  token: secret
)"),
              ElementsAre("4:5: unknown key \"http3\"", "6:3: unknown key \"ocsp\"",
                          "8:25: unknown key \"chain\"", "11:32: unknown key \"wieght\"",
                          "12:29: unknown key \"method\"", "13:5: unknown key \"retry\"",
                          "15:22: unknown key \"path\"", "17:20: unknown key \"format\"",
                          "18:10: unknown key \"body_timeout_ms\"", "21:3: unknown key \"token\""));
}

TEST(LoadString, DuplicateKeys) {
  EXPECT_THAT(load_errors(MINIMAL + "workers: 2\nworkers: 3\n"),
              ElementsAre("9:1: duplicate key \"workers\""));
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80", address: ":81"}]
upstreams:
  app: {servers: ["a:1"]}
  app: {servers: ["b:1"]}
routes: [{upstream: app}]
)"),
              ElementsAre("1:27: duplicate key \"address\"", "4:3: duplicate upstream \"app\""));
}

TEST(LoadString, NonScalarKey) {
  EXPECT_THAT(load_errors(MINIMAL + "[a]: 1\n"),
              ElementsAre("8:1: expected a string key, got a sequence"));
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80"}]
upstreams:
  {a: 1}: {servers: ["a:1"]}
  "": {servers: ["a:1"]}
routes: [{upstream: app}]
)"),
              ElementsAre("3:3: expected an upstream name, got a map",
                          "4:3: expected an upstream name, got \"\""));
}

TEST(LoadString, EmptyFileIsMissingEverything) {
  LoadResult result = load("# nothing here\n");
  EXPECT_FALSE(result.config);
  EXPECT_THAT(errors_of(result), ElementsAre("0:0: missing required key \"listen\"",
                                             "0:0: missing required key \"upstreams\"",
                                             "0:0: missing required key \"routes\""));
  EXPECT_EQ(to_string(result.errors[0]), "test.yaml: missing required key \"listen\"");
}

TEST(LoadString, TopLevelMustBeAMap) {
  EXPECT_THAT(load_errors("- listen\n"),
              ElementsAre("0:0: expected a map for the config file, got a sequence"));
}

TEST(LoadString, MissingRequiredKeys) {
  EXPECT_THAT(
      load_errors(R"(listen:
  - tls: false
tls:
  certificates:
    - cert: a.crt
    - key: a.key
upstreams:
  app: {balance: round_robin}
  web:
    servers: [{weight: 2}]
routes:
  - match: {path_prefix: /}
)"),
      ElementsAre("2:5: missing required key \"address\"", "5:7: missing required key \"key\"",
                  "6:7: missing required key \"cert\"", "8:3: missing required key \"servers\"",
                  "10:15: missing required key \"address\"",
                  "12:5: missing required key \"upstream\""));
}

TEST(LoadString, RequiredCollectionsMustNotBeEmpty) {
  EXPECT_THAT(
      load_errors(R"(listen: []
upstreams: {}
routes: []
)"),
      ElementsAre("1:9: \"listen\" must not be empty", "2:12: \"upstreams\" must not be empty",
                  "3:9: \"routes\" must not be empty"));
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80"}]
upstreams:
  app:
    servers: []
routes: [{upstream: app}]
)"),
              ElementsAre("4:14: \"servers\" must not be empty"));
}

TEST(LoadString, WrongShapes) {
  EXPECT_THAT(load_errors(R"(listen: ":80"
tls: [a]
upstreams: [app]
routes:
  - ":80"
log: info
limits:
)"),
              ElementsAre("1:9: expected a sequence for \"listen\", got \":80\"",
                          "2:6: expected a map for \"tls\", got a sequence",
                          "3:12: expected a map for \"upstreams\", got a sequence",
                          "5:5: expected a map for an entry of \"routes\", got \":80\"",
                          "6:6: expected a map for \"log\", got \"info\""));
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80"}]
upstreams:
  app:
    servers: [[a]]
  web: "w:1"
routes: [{upstream: app}]
)"),
              ElementsAre("4:15: expected host:port or a map for an entry of \"servers\", got a "
                          "sequence",
                          "5:3: expected a map for upstream \"web\", got \"w:1\""));
  EXPECT_THAT(load_errors(MINIMAL + "tls:\n  certificates: {cert: a.crt, key: a.key}\n"),
              ElementsAre("9:17: expected a sequence for \"certificates\", got a map"));
}

TEST(LoadString, EmptyValuesPointAtTheirKey) {
  EXPECT_THAT(load_errors(R"(listen:
  - address:
    tls: ~
upstreams:
  app:
    servers: ["a:1"]
routes:
  - upstream:
)"),
              ElementsAre("2:5: expected host:port for \"address\", got an empty value",
                          "3:5: expected a boolean for \"tls\", got an empty value",
                          "8:5: expected a string for \"upstream\", got an empty value"));
}

TEST(LoadString, EmptySectionsMeanDefaults) {
  Config cfg = load_ok(MINIMAL + "log:\nlimits:\ntls:\n  certificates:\n");
  EXPECT_EQ(cfg.log.level, "info");
  EXPECT_EQ(cfg.limits.max_connections, 10000u);
  Config no_match = load_ok(R"(listen: [{address: ":80"}]
upstreams: {app: {servers: ["a:1"]}}
routes:
  - match:
    upstream: app
)");
  ASSERT_EQ(no_match.routes.size(), 1u);
  EXPECT_EQ(no_match.routes[0].match.host, "");
  EXPECT_EQ(no_match.routes[0].match.path_prefix, "/");
}

TEST(LoadString, Booleans) {
  std::string yaml = R"(listen:
  - {address: ":80", tls: "${TLS}"}
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
)";
  EXPECT_FALSE(load_ok(yaml, fake_env({{"TLS", "false"}})).listeners.at(0).tls);
  EXPECT_FALSE(load_ok(yaml, fake_env({{"TLS", "False"}})).listeners.at(0).tls);
  EXPECT_FALSE(load_ok(yaml, fake_env({{"TLS", "FALSE"}})).listeners.at(0).tls);
  EXPECT_THAT(load_errors(yaml, fake_env({{"TLS", "yes please"}})),
              ElementsAre("2:27: expected a boolean for \"tls\", got \"yes please\""));
  EXPECT_THAT(load_errors(yaml, fake_env({{"TLS", "1"}})),
              ElementsAre("2:27: expected a boolean for \"tls\", got \"1\""));
}

TEST(LoadString, TlsAndRedirectOnOneListener) {
  EXPECT_THAT(load_errors(R"(listen:
  - address: ":80"
    tls: true
    redirect_https: true
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
)"),
              ElementsAre("2:5: a listener cannot have both tls and redirect_https"));
}

TEST(LoadString, RedirectHttpsPort) {
  const std::string yaml = R"(listen:
  - address: ":8000"
  - address: ":8080"
    redirect_https: true
    https_port: ${PORT}
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
)";
  EXPECT_EQ(load_ok(yaml, fake_env({{"PORT", "443"}})).listeners.at(1).https_port, 443);
  EXPECT_THAT(load_errors(yaml, fake_env({{"PORT", "0"}})),
              ElementsAre("5:17: expected an integer from 1 to 65535 for \"https_port\", got \"0\""));
  EXPECT_EQ(load_ok(R"(listen: [{address: ":8080", redirect_https: true}]
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
)").listeners.at(0).https_port, 0);
  EXPECT_THAT(load_errors(R"(listen:
  - address: ":8000"
    https_port: 443
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
)"),
              ElementsAre("3:17: https_port only applies to a listener with redirect_https: true"));
}

TEST(LoadString, User) {
  EXPECT_EQ(load_ok(MINIMAL).user, "");
  EXPECT_EQ(load_ok(MINIMAL + "user: frontdoor\n").user, "frontdoor");
  EXPECT_THAT(load_errors(MINIMAL + "user: \"\"\n"),
              ElementsAre(testing::HasSubstr("\"user\" must not be empty")));
}

TEST(LoadString, BodyLimits) {
  Config cfg = load_ok(MINIMAL + "limits: {body_timeout: 0s, body_min_rate: 512B/s}\n");
  EXPECT_EQ(cfg.limits.body_timeout, 0s);
  EXPECT_EQ(cfg.limits.body_min_rate, 512u);
  EXPECT_EQ(load_ok(MINIMAL + "limits: {body_min_rate: 2MiB/s}\n").limits.body_min_rate,
            2u * 1024 * 1024);
  EXPECT_EQ(load_ok(MINIMAL).limits.body_min_rate, 1024u);
  EXPECT_THAT(load_errors(MINIMAL + "limits: {body_min_rate: 1KB}\n"),
              ElementsAre(testing::HasSubstr("expected a rate like 1KiB/s for \"body_min_rate\"")));
}

TEST(LoadString, Hsts) {
  const std::string yaml = R"(listen:
  - address: ":8000"
    hsts: 365d
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
)";
  EXPECT_THAT(load_errors(yaml),
              ElementsAre("3:11: hsts only applies to a listener with tls: true"));
}

TEST(LoadString, BadDurations) {
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80"}]
upstreams:
  app:
    servers: ["a:1"]
    connect_timeout: 5
    response_timeout: 0s
    idle_timeout: -1s
routes: [{upstream: app}]
limits:
  header_timeout: 1.5s
  idle_timeout: {}
shutdown_timeout: 10 s
)"),
              ElementsAre("5:22: expected a duration like 5s for \"connect_timeout\": \"5\" has no "
                          "unit (use ms, s, m, h or d)",
                          "6:23: \"response_timeout\" must be greater than 0",
                          "7:19: expected a duration like 5s for \"idle_timeout\": \"-1s\" is "
                          "negative",
                          "10:19: expected a duration like 5s for \"header_timeout\": \"1.5s\" is "
                          "not a whole number",
                          "11:17: expected a duration like 5s for \"idle_timeout\", got a map",
                          "12:19: expected a duration like 5s for \"shutdown_timeout\": \"10 s\" "
                          "has an unknown unit \" s\" (use ms, s, m, h or d)"));
}

TEST(LoadString, BadIntegers) {
  EXPECT_THAT(
      load_errors(MINIMAL + R"(limits:
  max_connections: 0
  max_header_bytes: 1023
  max_body_bytes: 18446744073709551616
)"),
      ElementsAre(
          "9:20: expected an integer from 1 to 4294967295 for \"max_connections\", got \"0\"",
          "10:21: expected an integer from 1024 to 1048576 for \"max_header_bytes\", got "
          "\"1023\"",
          "11:19: expected a non-negative integer for \"max_body_bytes\", got "
          "\"18446744073709551616\""));
  EXPECT_EQ(load_ok(MINIMAL + "limits: {max_header_bytes: 1048576}\n").limits.max_header_bytes,
            1048576u);
  EXPECT_THAT(
      load_errors(MINIMAL + "limits: {max_header_bytes: 1048577}\n"),
      ElementsAre("8:28: expected an integer from 1024 to 1048576 for \"max_header_bytes\", "
                  "got \"1048577\""));
}

TEST(LoadString, Choices) {
  EXPECT_EQ(load_ok(MINIMAL + "log: {level: warn}\n").log.level, "warn");
  EXPECT_THAT(load_errors(MINIMAL + "log: {level: verbose}\ntls: {min_version: 1.1}\n"),
              ElementsAre("8:14: expected one of debug, info, warn, error for \"level\", got "
                          "\"verbose\"",
                          "9:20: expected one of 1.2, 1.3 for \"min_version\", got \"1.1\""));
}

TEST(LoadString, Balance) {
  std::string yaml = R"(listen: [{address: ":80"}]
upstreams:
  app:
    servers: ["a:1"]
    balance: ${BALANCE}
routes: [{upstream: app}]
)";
  for (const char* balance : {"round_robin", "least_conn", "random_two"}) {
    EXPECT_EQ(load_ok(yaml, fake_env({{"BALANCE", balance}})).upstreams.at(0).balance, balance);
  }
  const std::string expected =
      "5:14: expected one of round_robin, least_conn, random_two for \"balance\", got ";
  EXPECT_THAT(load_errors(yaml, fake_env({{"BALANCE", "fastest"}})),
              ElementsAre(expected + "\"fastest\""));
  EXPECT_THAT(load_errors(yaml, fake_env({{"BALANCE", "Least_Conn"}})),
              ElementsAre(expected + "\"Least_Conn\""));
  EXPECT_THAT(load_errors(yaml, fake_env({{"BALANCE", ""}})), ElementsAre(expected + "\"\""));
}

// An upstream "app" whose body is |keys| (indented under it, from line 5), and MINIMAL's routes.
std::string with_upstream_keys(const std::string& keys) {
  return R"(listen: [{address: ":80"}]
upstreams:
  app:
    servers: ["a:1"]
)" + keys +
         "routes: [{upstream: app}]\n";
}

TEST(LoadString, HealthCheckIsOffUnlessPresent) {
  Config cfg = load_ok(MINIMAL);
  EXPECT_FALSE(cfg.upstreams.at(0).health_check_enabled);
  const HealthCheck& hc = cfg.upstreams.at(0).health_check;
  EXPECT_EQ(hc.path, "/");
  EXPECT_EQ(hc.interval, 5s);
  EXPECT_EQ(hc.timeout, 2s);
  EXPECT_EQ(hc.healthy_after, 2u);
  EXPECT_EQ(hc.unhealthy_after, 3u);
}

TEST(LoadString, EmptyHealthCheckEnablesDefaults) {
  for (const char* body : {"    health_check:\n", "    health_check: ~\n"}) {
    Config cfg = load_ok(with_upstream_keys(body));
    const Upstream& up = cfg.upstreams.at(0);
    EXPECT_TRUE(up.health_check_enabled) << body;
    EXPECT_EQ(up.health_check.path, "/");
    EXPECT_EQ(up.health_check.interval, 5s);
    EXPECT_EQ(up.health_check.timeout, 2s);
    EXPECT_EQ(up.health_check.healthy_after, 2u);
    EXPECT_EQ(up.health_check.unhealthy_after, 3u);
    // An empty value points at its key, like every other empty value.
    EXPECT_EQ(up.health_check.mark.line, 5);
    EXPECT_EQ(up.health_check.mark.col, 5);
  }
  Config braces = load_ok(with_upstream_keys("    health_check: {}\n"));
  EXPECT_TRUE(braces.upstreams.at(0).health_check_enabled);
  EXPECT_EQ(braces.upstreams[0].health_check.mark.line, 5);
  EXPECT_EQ(braces.upstreams[0].health_check.mark.col, 19);
}

TEST(LoadString, HealthCheckKeys) {
  Config cfg = load_ok(with_upstream_keys(R"(    health_check:
      path: /healthz?full=1
      interval: 1m
      timeout: 1m
      healthy_after: 100
      unhealthy_after: 1
)"));
  const Upstream& up = cfg.upstreams.at(0);
  EXPECT_TRUE(up.health_check_enabled);
  EXPECT_EQ(up.health_check.path, "/healthz?full=1");
  EXPECT_EQ(up.health_check.interval, 1min);
  EXPECT_EQ(up.health_check.timeout, 1min);  // equal to the interval is allowed
  EXPECT_EQ(up.health_check.healthy_after, 100u);
  EXPECT_EQ(up.health_check.unhealthy_after, 1u);
  EXPECT_EQ(up.health_check.mark.line, 6);
  EXPECT_EQ(up.health_check.mark.col, 7);
}

TEST(LoadString, BadHealthCheckValues) {
  EXPECT_THAT(
      load_errors(with_upstream_keys(R"(    health_check:
      path: healthz
      interval: 0s
      timeout: 0ms
      healthy_after: 0
      unhealthy_after: 101
)")),
      ElementsAre("6:13: path must start with \"/\", got \"healthz\"",
                  "7:17: \"interval\" must be greater than 0",
                  "8:16: \"timeout\" must be greater than 0",
                  "9:22: expected an integer from 1 to 100 for \"healthy_after\", got \"0\"",
                  "10:24: expected an integer from 1 to 100 for \"unhealthy_after\", got "
                  "\"101\""));
  EXPECT_THAT(load_errors(with_upstream_keys(R"(    health_check:
      path: "/a b"
      interval: 5
      healthy_after: 101
      unhealthy_after: 0
      path: /
)")),
              ElementsAre("6:13: path must not contain spaces or control characters, got \"/a b\"",
                          "7:17: expected a duration like 5s for \"interval\": \"5\" has no unit "
                          "(use ms, s, m, h or d)",
                          "8:22: expected an integer from 1 to 100 for \"healthy_after\", got "
                          "\"101\"",
                          "9:24: expected an integer from 1 to 100 for \"unhealthy_after\", got "
                          "\"0\"",
                          "10:7: duplicate key \"path\""));
  EXPECT_THAT(load_errors(with_upstream_keys("    health_check: {path: \"\"}\n")),
              ElementsAre("5:26: path must start with \"/\", got \"\""));
  EXPECT_THAT(load_errors(with_upstream_keys("    health_check: {path: [\"/\"]}\n")),
              ElementsAre("5:26: expected a string for \"path\", got a sequence"));
}

TEST(LoadString, HealthCheckMustBeAMap) {
  EXPECT_THAT(load_errors(with_upstream_keys("    health_check: true\n")),
              ElementsAre("5:19: expected a map for \"health_check\", got \"true\""));
  EXPECT_THAT(load_errors(with_upstream_keys("    health_check: [/healthz]\n")),
              ElementsAre("5:19: expected a map for \"health_check\", got a sequence"));
}

TEST(LoadString, HealthCheckTimeoutMustFitTheInterval) {
  // Pointed at the timeout, wherever it is written.
  EXPECT_THAT(load_errors(with_upstream_keys(R"(    health_check:
      timeout: 3s
      interval: 2500ms
)")),
              ElementsAre("6:16: health_check timeout 3s must not be longer than its interval "
                          "2500ms"));
  EXPECT_THAT(
      load_errors(with_upstream_keys("    health_check: {interval: 1s, timeout: 1001ms}\n")),
      ElementsAre("5:43: health_check timeout 1001ms must not be longer than its "
                  "interval 1s"));
  // A default timeout (2s) is too long for a written interval: pointed at the interval.
  EXPECT_THAT(load_errors(with_upstream_keys("    health_check: {interval: 1s}\n")),
              ElementsAre("5:30: health_check timeout 2s must not be longer than its interval "
                          "1s"));
  EXPECT_THAT(load_errors(with_upstream_keys("    health_check: {timeout: 6s}\n")),
              ElementsAre("5:29: health_check timeout 6s must not be longer than its interval "
                          "5s"));
  // No comparison against a value that failed to parse.
  EXPECT_THAT(load_errors(with_upstream_keys("    health_check: {interval: 1, timeout: 3s}\n")),
              ElementsAre("5:30: expected a duration like 5s for \"interval\": \"1\" has no unit "
                          "(use ms, s, m, h or d)"));
}

TEST(LoadString, PassiveDetectionRetriesAndResolve) {
  Config cfg = load_ok(with_upstream_keys(R"(    resolve_interval: 30s
    max_fails: 1000
    fail_window: 1m
    fail_timeout: 250ms
    retries: 10
    retry_timeout: 2s
)"));
  const Upstream& up = cfg.upstreams.at(0);
  EXPECT_EQ(up.resolve_interval, 30s);
  EXPECT_EQ(up.max_fails, 1000u);
  EXPECT_EQ(up.fail_window, 1min);
  EXPECT_EQ(up.fail_timeout, 250ms);
  EXPECT_EQ(up.retries, 10u);
  EXPECT_EQ(up.retry_timeout, 2s);
  EXPECT_FALSE(up.health_check_enabled);
  // 0 turns passive detection and retries off.
  Config off = load_ok(with_upstream_keys("    max_fails: 0\n    retries: 0\n"));
  EXPECT_EQ(off.upstreams.at(0).max_fails, 0u);
  EXPECT_EQ(off.upstreams.at(0).retries, 0u);
}

TEST(LoadString, BadPassiveDetectionRetriesAndResolve) {
  EXPECT_THAT(
      load_errors(with_upstream_keys(R"(    resolve_interval: 0s
    max_fails: 1001
    fail_window: 0m
    fail_timeout: 0h
    retries: 11
    retry_timeout: 0d
)")),
      ElementsAre("5:23: \"resolve_interval\" must be greater than 0",
                  "6:16: expected an integer from 0 to 1000 for \"max_fails\", got \"1001\"",
                  "7:18: \"fail_window\" must be greater than 0",
                  "8:19: \"fail_timeout\" must be greater than 0",
                  "9:14: expected an integer from 0 to 10 for \"retries\", got \"11\"",
                  "10:20: \"retry_timeout\" must be greater than 0"));
  EXPECT_THAT(
      load_errors(with_upstream_keys(R"(    resolve_interval: often
    max_fails: -1
    fail_window: {}
    fail_timeout:
    retries: two
    retry_timeout: 1.5s
)")),
      ElementsAre("5:23: expected a duration like 5s for \"resolve_interval\": \"often\" does not "
                  "start with a number",
                  "6:16: expected an integer from 0 to 1000 for \"max_fails\", got \"-1\"",
                  "7:18: expected a duration like 5s for \"fail_window\", got a map",
                  "8:5: expected a duration like 5s for \"fail_timeout\", got an empty value",
                  "9:14: expected an integer from 0 to 10 for \"retries\", got \"two\"",
                  "10:20: expected a duration like 5s for \"retry_timeout\": \"1.5s\" is not a "
                  "whole number"));
}

TEST(LoadString, AdminIsOffUnlessPresent) {
  Config cfg = load_ok(MINIMAL);
  EXPECT_FALSE(cfg.admin.enabled);
  EXPECT_EQ(cfg.admin.address, "127.0.0.1:9901");
  EXPECT_EQ(cfg.admin.endpoint.host, "127.0.0.1");
  EXPECT_EQ(cfg.admin.endpoint.port, 9901);
}

TEST(LoadString, EmptyAdminEnablesTheDefaultAddress) {
  for (const char* section : {"admin:\n", "admin: ~\n"}) {
    Config cfg = load_ok(MINIMAL + section);
    EXPECT_TRUE(cfg.admin.enabled) << section;
    EXPECT_EQ(cfg.admin.address, "127.0.0.1:9901");
    EXPECT_EQ(cfg.admin.endpoint.host, "127.0.0.1");
    EXPECT_EQ(cfg.admin.endpoint.port, 9901);
    EXPECT_EQ(cfg.admin.mark.line, 8);
    EXPECT_EQ(cfg.admin.mark.col, 1);
  }
  Config braces = load_ok(MINIMAL + "admin: {}\n");
  EXPECT_TRUE(braces.admin.enabled);
  EXPECT_EQ(braces.admin.mark.line, 8);
  EXPECT_EQ(braces.admin.mark.col, 8);
}

TEST(LoadString, AdminAddress) {
  Config cfg = load_ok(MINIMAL + "admin:\n  address: \"[::1]:${ADMIN_PORT:-9902}\"\n");
  EXPECT_TRUE(cfg.admin.enabled);
  EXPECT_EQ(cfg.admin.address, "[::1]:9902");
  EXPECT_EQ(cfg.admin.endpoint.host, "::1");
  EXPECT_EQ(cfg.admin.endpoint.port, 9902);
  EXPECT_EQ(cfg.admin.mark.line, 9);
  EXPECT_EQ(cfg.admin.mark.col, 3);
  EXPECT_EQ(load_ok(MINIMAL + "admin: {address: \"*:9000\"}\n").admin.endpoint.host, "");
}

TEST(LoadString, BadAdmin) {
  EXPECT_THAT(load_errors(MINIMAL + "admin:\n  address: localhost\n"),
              ElementsAre("9:12: expected host:port for \"address\": missing port in "
                          "\"localhost\" (expected host:port)"));
  EXPECT_THAT(load_errors(MINIMAL + "admin:\n  address:\n"),
              ElementsAre("9:3: expected host:port for \"address\", got an empty value"));
  EXPECT_THAT(load_errors(MINIMAL + "admin: \"127.0.0.1:9901\"\n"),
              ElementsAre("8:8: expected a map for \"admin\", got \"127.0.0.1:9901\""));
  EXPECT_THAT(load_errors(MINIMAL + "admin: {address: \":1\", address: \":2\"}\n"),
              ElementsAre("8:24: duplicate key \"address\""));
}

TEST(LoadString, AdminAddressMustNotBeAListenAddress) {
  EXPECT_THAT(load_errors(R"(listen:
  - address: "127.0.0.1:8443"
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
admin:
  address: "127.0.0.1:8443"
)"),
              ElementsAre("6:3: admin address 127.0.0.1:8443 is also a listen address"));
  EXPECT_THAT(load_errors(R"(listen: [{address: "*:9901"}]
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
admin:
)"),
              ElementsAre("4:1: admin address 127.0.0.1:9901 overlaps listen address *:9901"));
}

// The example from the interface spec, as written there, except: the certificate and CA bundle
// paths come from the environment (validation reads the files).
TEST(LoadString, SpecExample) {
  test::TempDir dir;
  auto key = test::make_key();
  auto cert = test::make_certificate(key.get(), "example.com");
  std::string cert_path = dir.write("site.crt", test::to_pem(cert.get()));
  std::string key_path = dir.write("site.key", test::to_pem(key.get()));
  Config cfg = load_ok(R"(listen:                            # required, at least one
  - address: "0.0.0.0:443"         # host:port; "[::]:443" for IPv6
    tls: true                      # terminate TLS here; certificate chosen by SNI
  - address: "0.0.0.0:80"
    redirect_https: true           # answer with 308 to https://host/path
    # hsts: 365d                   # on a TLS listener: add Strict-Transport-Security

tls:
  min_version: "1.2"               # "1.2" or "1.3"
  certificates:                    # static PEM files; chosen by SNI against each certificate's SANs
    - cert: ${CERT}                # leaf first, then chain
      key: ${KEY}
  acme:                            # managed certificates, issued and renewed automatically
    directory: "https://acme-v02.api.letsencrypt.org/directory"
    email: "ops@example.com"
    domains: ["example.com", "www.example.com"]   # one certificate per name
    challenge: http-01             # http-01 | tls-alpn-01
    storage: "/var/lib/frontdoor"  # account key, certificates, keys (0600); written atomically
    ca_bundle: ${CA}               # optional: extra roots to trust for the ACME server itself
    renew: auto                    # auto = the CA's ARI window (RFC 9773) if offered, else when 1/3 of the
                                   # lifetime is left (1/2 for lifetimes <= 10 days); or a duration before expiry

upstreams:                         # required, at least one
  app:
    servers: ["app-1:8000", "app-2:8000"]      # host:port, or {address: "app-3:8000", weight: 2}
                                   # a host name expands to all its A/AAAA records
    resolve_interval: 5s           # re-resolve host names this often
    balance: round_robin           # round_robin (default) | least_conn | random_two
    connect_timeout: 3s
    health_check:                  # active checks; absent = only passive failure detection
      path: /healthz               # GET with Host of the upstream; 2xx and 3xx are healthy
      interval: 5s
      timeout: 2s
      healthy_after: 2             # consecutive passes to bring a server back
      unhealthy_after: 3           # consecutive failures to take it out

routes:                            # required; first match wins
  - match: {host: "example.com", path_prefix: "/api/"}
    upstream: app
  - match: {path_prefix: "/"}
    upstream: app

admin:
  address: "127.0.0.1:9901"        # GET /metrics, GET /status, GET /ready

log:
  level: info                      # debug | info | warn | error; JSON lines on stdout
  access: true                     # one JSON line per request on stdout

limits:
  max_connections: 10000
  header_timeout: 10s              # whole request head must arrive within this, counted from accept
  body_timeout: 60s                # a request body must be complete within this (408 otherwise)
  body_min_rate: 1KiB/s            # after a 5s grace a body slower than this is cut (408)
  idle_timeout: 60s                # keep-alive idle
  max_header_bytes: 65536
  max_body_bytes: 0                # 0 = unlimited; bodies are streamed, never buffered whole
shutdown_timeout: 10s
workers: auto                      # worker threads; auto = number of CPU cores
)",
                       fake_env({{"CERT", cert_path}, {"KEY", key_path}, {"CA", cert_path}}));
  ASSERT_EQ(cfg.listeners.size(), 2u);
  EXPECT_EQ(cfg.listeners[0].endpoint.host, "0.0.0.0");
  EXPECT_EQ(cfg.listeners[0].endpoint.port, 443);
  EXPECT_TRUE(cfg.listeners[0].tls);
  EXPECT_EQ(cfg.listeners[1].endpoint.port, 80);
  EXPECT_TRUE(cfg.listeners[1].redirect_https);
  EXPECT_EQ(cfg.tls.min_version, "1.2");
  ASSERT_EQ(cfg.tls.certificates.size(), 1u);
  EXPECT_EQ(cfg.tls.certificates[0].cert, cert_path);
  EXPECT_TRUE(cfg.tls.acme_enabled);
  EXPECT_EQ(cfg.tls.acme.directory, "https://acme-v02.api.letsencrypt.org/directory");
  EXPECT_EQ(cfg.tls.acme.email, "ops@example.com");
  EXPECT_THAT(cfg.tls.acme.domains, ElementsAre("example.com", "www.example.com"));
  EXPECT_EQ(cfg.tls.acme.challenge, "http-01");
  EXPECT_EQ(cfg.tls.acme.storage, "/var/lib/frontdoor");
  EXPECT_EQ(cfg.tls.acme.ca_bundle, cert_path);
  EXPECT_TRUE(cfg.tls.acme.renew_auto);
  EXPECT_EQ(cfg.tls.acme.mark.line, 14);
  EXPECT_EQ(cfg.tls.acme.mark.col, 5);
  ASSERT_EQ(cfg.upstreams.size(), 1u);
  const Upstream& app = cfg.upstreams[0];
  EXPECT_EQ(app.name, "app");
  ASSERT_EQ(app.servers.size(), 2u);
  EXPECT_EQ(app.servers[0].address, "app-1:8000");
  EXPECT_EQ(app.servers[1].endpoint.host, "app-2");
  EXPECT_EQ(app.resolve_interval, 5s);
  EXPECT_EQ(app.balance, "round_robin");
  EXPECT_EQ(app.connect_timeout, 3s);
  EXPECT_TRUE(app.health_check_enabled);
  EXPECT_EQ(app.health_check.path, "/healthz");
  EXPECT_EQ(app.health_check.interval, 5s);
  EXPECT_EQ(app.health_check.timeout, 2s);
  EXPECT_EQ(app.health_check.healthy_after, 2u);
  EXPECT_EQ(app.health_check.unhealthy_after, 3u);
  EXPECT_EQ(app.health_check.mark.line, 31);
  EXPECT_EQ(app.health_check.mark.col, 7);
  ASSERT_EQ(cfg.routes.size(), 2u);
  EXPECT_EQ(cfg.routes[0].match.host, "example.com");
  EXPECT_EQ(cfg.routes[0].match.path_prefix, "/api/");
  EXPECT_EQ(cfg.routes[1].match.path_prefix, "/");
  EXPECT_TRUE(cfg.admin.enabled);
  EXPECT_EQ(cfg.admin.address, "127.0.0.1:9901");
  EXPECT_EQ(cfg.admin.endpoint.host, "127.0.0.1");
  EXPECT_EQ(cfg.admin.endpoint.port, 9901);
  EXPECT_EQ(cfg.admin.mark.line, 44);
  EXPECT_EQ(cfg.admin.mark.col, 3);
  EXPECT_EQ(cfg.log.level, "info");
  EXPECT_TRUE(cfg.log.access);
  EXPECT_EQ(cfg.limits.max_connections, 10000u);
  EXPECT_EQ(cfg.limits.header_timeout, 10s);
  EXPECT_EQ(cfg.limits.idle_timeout, 60s);
  EXPECT_EQ(cfg.limits.max_header_bytes, 65536u);
  EXPECT_EQ(cfg.limits.body_timeout, 60s);
  EXPECT_EQ(cfg.limits.body_min_rate, 1024u);
  EXPECT_EQ(cfg.limits.max_body_bytes, 0u);
  EXPECT_EQ(cfg.shutdown_timeout, 10s);
  EXPECT_EQ(cfg.workers, 0u);
}

// Every upstream key at once, with values other than the defaults.
TEST(LoadString, AllUpstreamKeys) {
  Config cfg = load_ok(with_upstream_keys(R"(    balance: random_two
    resolve_interval: 1m
    health_check: {path: /ready, interval: 10s, timeout: 500ms, healthy_after: 1,
                   unhealthy_after: 5}
    max_fails: 5
    fail_window: 30s
    fail_timeout: 1m
    retries: 1
    retry_timeout: 5s
    connect_timeout: 1s
    response_timeout: 30s
    max_idle_connections: 8
    idle_timeout: 90s
)"));
  const Upstream& up = cfg.upstreams.at(0);
  EXPECT_EQ(up.balance, "random_two");
  EXPECT_EQ(up.resolve_interval, 1min);
  EXPECT_TRUE(up.health_check_enabled);
  EXPECT_EQ(up.health_check.path, "/ready");
  EXPECT_EQ(up.health_check.interval, 10s);
  EXPECT_EQ(up.health_check.timeout, 500ms);
  EXPECT_EQ(up.health_check.healthy_after, 1u);
  EXPECT_EQ(up.health_check.unhealthy_after, 5u);
  EXPECT_EQ(up.health_check.mark.line, 7);
  EXPECT_EQ(up.health_check.mark.col, 19);
  EXPECT_EQ(up.max_fails, 5u);
  EXPECT_EQ(up.fail_window, 30s);
  EXPECT_EQ(up.fail_timeout, 1min);
  EXPECT_EQ(up.retries, 1u);
  EXPECT_EQ(up.retry_timeout, 5s);
  EXPECT_EQ(up.connect_timeout, 1s);
  EXPECT_EQ(up.response_timeout, 30s);
  EXPECT_EQ(up.max_idle_connections, 8u);
  EXPECT_EQ(up.idle_timeout, 90s);
}

TEST(LoadString, BadAddresses) {
  EXPECT_THAT(load_errors(R"(listen:
  - address: "x:99999"
  - address: localhost
upstreams:
  app:
    servers: ["::1:80", {address: "[::1]"}]
routes: [{upstream: app}]
)"),
              ElementsAre("2:14: expected host:port for \"address\": invalid port in \"x:99999\"",
                          "3:14: expected host:port for \"address\": missing port in \"localhost\" "
                          "(expected host:port)",
                          "6:15: expected host:port for an entry of \"servers\": IPv6 address must "
                          "be in brackets, like [::1]:443, in \"::1:80\"",
                          "6:35: expected host:port for \"address\": missing port after \"]\" in "
                          "\"[::1]\""));
}

TEST(LoadString, Routes) {
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80"}]
upstreams: {app: {servers: ["a:1"]}}
routes:
  - match: {path_prefix: api/}
    upstream: app
  - match: {path_prefix: ""}
    upstream: app
  - match: {host: [a]}
    upstream: [app]
)"),
              ElementsAre("4:26: path_prefix must start with \"/\", got \"api/\"",
                          "6:26: path_prefix must start with \"/\", got \"\"",
                          "8:19: expected a string for \"host\", got a sequence",
                          "9:15: expected a string for \"upstream\", got a sequence"));
}

TEST(LoadString, ValidateRunsAfterParsing) {
  std::string yaml = R"(listen: [{address: ":80"}, {address: "*:80"}]
upstreams: {app: {servers: ["a:1"]}}
routes:
  - upstream: api
)";
  EXPECT_THAT(load_errors(yaml), ElementsAre("1:28: duplicate listen address \"*:80\"",
                                             "4:15: route refers to unknown upstream \"api\""));
}

TEST(LoadString, ValidateIsSkippedAfterParseErrors) {
  EXPECT_THAT(load_errors(R"(listen: [{address: ":80", tls: maybe}]
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: api}]
)"),
              ElementsAre("1:32: expected a boolean for \"tls\", got \"maybe\""));
}

TEST(LoadString, AllErrorsAreCollectedInDocumentOrder) {
  EXPECT_THAT(
      load_errors(R"(listen:
  - address: ":0"
upstreams:
  app:
    servers: ["a:1"]
    connect_timeout: soon
routes: [{upstream: app, extra: 1}]
workers: many
)"),
      ElementsAre("2:14: expected host:port for \"address\": invalid port in \":0\"",
                  "6:22: expected a duration like 5s for \"connect_timeout\": \"soon\" does "
                  "not start with a number",
                  "7:26: unknown key \"extra\"",
                  "8:10: expected \"auto\" or an integer from 1 to 1024 for \"workers\", "
                  "got \"many\""));
}

TEST(LoadString, YamlSyntaxError) {
  LoadResult result = load("listen:\n  - address: \":80\"\n bad: [\n");
  EXPECT_FALSE(result.config);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 3);
  EXPECT_EQ(result.errors[0].col, 2);
  EXPECT_EQ(to_string(result.errors[0]), "test.yaml:3:2: invalid YAML: end of map not found");
  EXPECT_THAT(errors_of(load("listen: a: b\n")),
              ElementsAre("1:10: invalid YAML: illegal map value"));
  EXPECT_THAT(errors_of(load("a: *nowhere\n")),
              ElementsAre("1:4: invalid YAML: the referenced anchor is not defined"));
}

TEST(LoadString, TextAfterTheDocumentIsAnError) {
  // yaml-cpp reads a JSON-style mapping followed by more text as two documents; a config is one.
  EXPECT_THAT(errors_of(load("{listen: [{address: \":80\"}]}\nbogus: 1\n")),
              ElementsAre("2:1: a second YAML document: the config file must be one document"));
  EXPECT_THAT(errors_of(load("listen: []\n---\nlisten: []\n")),
              ElementsAre("3:1: a second YAML document: the config file must be one document"));
}

TEST(LoadString, StrayCommaIsAnErrorNotAHang) {
  // yaml-cpp 0.7 makes an endless run of empty documents of a "," where a node should start;
  // reading all documents never returned and took all memory (found by tests/fuzz/config).
  EXPECT_THAT(errors_of(load(",")), ElementsAre("1:1: invalid YAML: ',' cannot start a node here"));
  EXPECT_THAT(errors_of(load("- a\n- b\n,")),
              ElementsAre("3:1: invalid YAML: ',' cannot start a node here"));
}

TEST(LoadString, AnchorsAndAliasesWork) {
  Config cfg = load_ok(R"(listen: [{address: ":80"}]
upstreams:
  app: &defaults {servers: ["a:1"], connect_timeout: 1s}
  copy: *defaults
routes: [{upstream: copy}]
)");
  ASSERT_EQ(cfg.upstreams.size(), 2u);
  EXPECT_EQ(cfg.upstreams[1].connect_timeout, 1s);
}

TEST(EnvExpansion, VariablesAndDefaults) {
  Config cfg = load_ok(R"(listen:
  - address: "${HOST:-127.0.0.1}:${PORT:-8443}"
  - address: "${ALT_HOST}:${ALT_PORT:-81}"
upstreams:
  app:
    servers: ["${UPSTREAM}"]
    connect_timeout: ${TIMEOUT:-2s}
routes: [{upstream: app, match: {path_prefix: "/${PREFIX:-}"}}]
workers: ${WORKERS:-auto}
)",
                       fake_env({{"ALT_HOST", "0.0.0.0"},
                                 {"ALT_PORT", ""},
                                 {"UPSTREAM", "app-1:8000"},
                                 {"WORKERS", "3"}}));
  EXPECT_EQ(cfg.listeners[0].address, "127.0.0.1:8443");
  EXPECT_EQ(cfg.listeners[0].endpoint.port, 8443);
  // Set but empty takes the default, like the shell and docker compose.
  EXPECT_EQ(cfg.listeners[1].address, "0.0.0.0:81");
  EXPECT_EQ(cfg.upstreams[0].servers[0].address, "app-1:8000");
  EXPECT_EQ(cfg.upstreams[0].connect_timeout, 2s);
  EXPECT_EQ(cfg.routes[0].match.path_prefix, "/");
  EXPECT_EQ(cfg.workers, 3u);
}

TEST(EnvExpansion, LiteralDollarsAndSingleExpansion) {
  Config cfg = load_ok(R"(listen: [{address: ":80"}]
upstreams: {app: {servers: ["a:1"]}}
routes:
  - match: {host: "$$x$", path_prefix: "/$HOME/${NESTED}"}
    upstream: app
)",
                       fake_env({{"NESTED", "${HOME}"}, {"HOME", "/root"}}));
  EXPECT_EQ(cfg.routes[0].match.host, "$$x$");
  // An expanded value is not expanded again.
  EXPECT_EQ(cfg.routes[0].match.path_prefix, "/$HOME/${HOME}");
}

TEST(EnvExpansion, KeysAreNotExpanded) {
  Config cfg = load_ok(R"(listen: [{address: ":80"}]
upstreams: {"${NAME}": {servers: ["a:1"]}, app: {servers: ["b:1"]}}
routes: [{upstream: "${NAME}"}]
)",
                       fake_env({{"NAME", "app"}}));
  EXPECT_EQ(cfg.upstreams.at(0).name, "${NAME}");
  EXPECT_EQ(cfg.routes.at(0).upstream, "app");
}

TEST(EnvExpansion, Errors) {
  EXPECT_THAT(load_errors(R"(listen:
  - address: "${HOST}:80"
  - address: "${HOST:-x}:${PORT"
  - address: "${}:80"
  - address: "${A-B}:80"
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
)"),
              ElementsAre("2:14: environment variable HOST is not set",
                          "3:14: unterminated \"${\" in \"${HOST:-x}:${PORT\"",
                          "4:14: invalid environment variable name \"\" in \"${}\"",
                          "5:14: invalid environment variable name \"A-B\" in \"${A-B}\""));
}

TEST(EnvExpansion, SetButEmptyWithoutDefaultIsEmpty) {
  EXPECT_THAT(load_errors(MINIMAL + "workers: \"${W}\"\n", fake_env({{"W", ""}})),
              ElementsAre("8:10: expected \"auto\" or an integer from 1 to 1024 for \"workers\", "
                          "got \"\""));
}

TEST(EnvExpansion, ProcessEnvironment) {
  Environment env = process_environment();
  setenv("FD_CONFIG_TEST_VAR", "value", 1);
  EXPECT_EQ(env("FD_CONFIG_TEST_VAR"), "value");
  unsetenv("FD_CONFIG_TEST_VAR");
  EXPECT_EQ(env("FD_CONFIG_TEST_VAR"), std::nullopt);
}

TEST(LoadFile, ReadsTheFile) {
  test::TempDir dir;
  std::string path = dir.write("frontdoor.yaml", MINIMAL);
  LoadResult result = load_file(path, fake_env());
  ASSERT_TRUE(result.config) << to_string(result.errors.at(0));
  EXPECT_EQ(result.config->source, path);
}

TEST(LoadFile, ErrorsNameTheFile) {
  test::TempDir dir;
  std::string path = dir.write("bad.yaml", MINIMAL + "workers: 0\n");
  LoadResult result = load_file(path, fake_env());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(to_string(result.errors[0]),
            path +
                ":8:10: expected \"auto\" or an integer from 1 to 1024 for \"workers\", got "
                "\"0\"");
}

TEST(LoadFile, MissingFile) {
  test::TempDir dir;
  std::string path = dir.path() + "/nope.yaml";
  LoadResult result = load_file(path, fake_env());
  EXPECT_FALSE(result.config);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(result.errors[0].col, 0);
  EXPECT_EQ(to_string(result.errors[0]),
            path + ": cannot read config file: No such file or directory");
}

TEST(LoadFile, DirectoryIsNotAFile) {
  test::TempDir dir;
  LoadResult result = load_file(dir.path(), fake_env());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(to_string(result.errors[0]), dir.path() + ": cannot read config file: Is a directory");
}

TEST(Diagnostic, ToString) {
  EXPECT_EQ(to_string(Diagnostic{"f.yaml", 3, 7, "boom"}), "f.yaml:3:7: boom");
  EXPECT_EQ(to_string(Diagnostic{"f.yaml", 0, 0, "boom"}), "f.yaml: boom");
}

}  // namespace
}  // namespace fd::config
