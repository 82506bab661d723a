#include "proxy/admin_render.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "proxy/stats.h"

namespace fd::proxy {
namespace {

using nlohmann::json;

AdminView small_view() {
  AdminView v;
  v.version = "0.1.0";
  v.started_at = "2026-11-25T11:17:12.123Z";
  v.draining = false;
  v.connections_active = 7;
  v.config.source = "/etc/frontdoor/frontdoor.yaml";
  v.config.generation = 3;
  v.config.loaded_at = "2026-11-25T12:00:00.000Z";
  v.config.reloads_success = 2;
  v.config.reloads_failure = 1;
  v.config.last_reload_success = "2026-11-25T12:00:00.000Z";
  v.config.last_reload_failure = "2026-11-25T11:59:00.000Z";
  v.config.last_reload_error = "frontdoor.yaml:3:5: unknown key \"bogus\"";

  UpstreamView app;
  app.name = "app";
  app.balance = "round_robin";
  app.retries = 2;
  app.unserved_by_code = {{503, 4}};
  v.upstreams.push_back(app);

  ServerView a;
  a.upstream = "app";
  a.address = "10.0.0.1:8000";
  a.name = "app-1:8000";
  a.up = true;
  a.health = "up";
  a.checked = true;
  a.last_check_time = "2026-11-25T11:18:00.000Z";
  a.last_check_result = "pass";
  a.consecutive_passes = 5;
  a.active = 2;
  a.requests = 11;
  a.failures = 1;
  a.responses_by_code = {{200, 10}, {502, 1}};
  v.servers.push_back(a);

  ServerView b;
  b.upstream = "app";
  b.address = "10.0.0.2:8000";
  b.name = "app-2:8000";
  b.up = false;
  b.health = "unknown";
  b.passive_down = true;
  b.consecutive_failures = 3;
  v.servers.push_back(b);

  v.unrouted_by_code = {{404, 3}};

  LatencyHistogram h;
  h.observe(std::chrono::milliseconds(2));
  h.observe(std::chrono::milliseconds(300));
  v.request_duration = h.view();

  CertificateView c;
  c.names = {"example.com", "www.example.com"};
  c.issuer = "CN=Test CA";
  c.not_after = "2027-02-23T00:00:00Z";
  c.source = "acme";
  c.next_renewal = "2027-01-24T00:00:00Z";
  c.not_after_unix = 1803340800;
  c.acme_failures = 3;
  v.certificates.push_back(c);
  return v;
}

constexpr const char* GOLDEN_METRICS =
    R"(# HELP frontdoor_requests_total Responses sent to clients by upstream, server and status code; an empty server means the proxy answered without one, an empty upstream that no upstream was chosen.
# TYPE frontdoor_requests_total counter
frontdoor_requests_total{upstream="app",server="10.0.0.1:8000",code="200"} 10
frontdoor_requests_total{upstream="app",server="10.0.0.1:8000",code="502"} 1
frontdoor_requests_total{upstream="app",server="",code="503"} 4
frontdoor_requests_total{upstream="",server="",code="404"} 3
# HELP frontdoor_upstream_up Whether the upstream server would receive requests now (1) or not (0).
# TYPE frontdoor_upstream_up gauge
frontdoor_upstream_up{upstream="app",server="10.0.0.1:8000"} 1
frontdoor_upstream_up{upstream="app",server="10.0.0.2:8000"} 0
# HELP frontdoor_upstream_active_requests Requests in flight to the upstream server.
# TYPE frontdoor_upstream_active_requests gauge
frontdoor_upstream_active_requests{upstream="app",server="10.0.0.1:8000"} 2
frontdoor_upstream_active_requests{upstream="app",server="10.0.0.2:8000"} 0
# HELP frontdoor_upstream_failures_total Connect errors, resets and timeouts before a response from the upstream server.
# TYPE frontdoor_upstream_failures_total counter
frontdoor_upstream_failures_total{upstream="app",server="10.0.0.1:8000"} 1
frontdoor_upstream_failures_total{upstream="app",server="10.0.0.2:8000"} 0
# HELP frontdoor_upstream_retries_total Requests retried on another server of the upstream.
# TYPE frontdoor_upstream_retries_total counter
frontdoor_upstream_retries_total{upstream="app"} 2
# HELP frontdoor_request_duration_seconds Duration of client requests in seconds.
# TYPE frontdoor_request_duration_seconds histogram
frontdoor_request_duration_seconds_bucket{le="0.001"} 0
frontdoor_request_duration_seconds_bucket{le="0.0025"} 1
frontdoor_request_duration_seconds_bucket{le="0.005"} 1
frontdoor_request_duration_seconds_bucket{le="0.01"} 1
frontdoor_request_duration_seconds_bucket{le="0.025"} 1
frontdoor_request_duration_seconds_bucket{le="0.05"} 1
frontdoor_request_duration_seconds_bucket{le="0.1"} 1
frontdoor_request_duration_seconds_bucket{le="0.25"} 1
frontdoor_request_duration_seconds_bucket{le="0.5"} 2
frontdoor_request_duration_seconds_bucket{le="1"} 2
frontdoor_request_duration_seconds_bucket{le="2.5"} 2
frontdoor_request_duration_seconds_bucket{le="5"} 2
frontdoor_request_duration_seconds_bucket{le="10"} 2
frontdoor_request_duration_seconds_bucket{le="+Inf"} 2
frontdoor_request_duration_seconds_sum 0.302
frontdoor_request_duration_seconds_count 2
# HELP frontdoor_certificate_expiry_seconds Unix time at which the certificate served for the name expires.
# TYPE frontdoor_certificate_expiry_seconds gauge
frontdoor_certificate_expiry_seconds{name="example.com",source="acme"} 1803340800
frontdoor_certificate_expiry_seconds{name="www.example.com",source="acme"} 1803340800
# HELP frontdoor_acme_failures_total Failed ACME attempts (orders and renewals) since start, per managed name.
# TYPE frontdoor_acme_failures_total counter
frontdoor_acme_failures_total{name="example.com"} 3
# HELP frontdoor_connections_active Client connections open now.
# TYPE frontdoor_connections_active gauge
frontdoor_connections_active 7
# HELP frontdoor_draining 1 while the proxy is shutting down and draining connections, else 0.
# TYPE frontdoor_draining gauge
frontdoor_draining 0
# HELP frontdoor_config_reloads_total Configuration reloads (SIGHUP) since start, by outcome.
# TYPE frontdoor_config_reloads_total counter
frontdoor_config_reloads_total{result="success"} 2
frontdoor_config_reloads_total{result="failure"} 1
# HELP frontdoor_config_generation Generation of the configuration in force: 1 at start, one more per successful reload.
# TYPE frontdoor_config_generation gauge
frontdoor_config_generation 3
)";

TEST(RenderMetrics, GoldenText) {
  EXPECT_EQ(render_metrics(small_view()), GOLDEN_METRICS);
}

TEST(RenderMetrics, EmptyFamiliesKeepHelpAndType) {
  AdminView v;
  std::string text = render_metrics(v);
  for (const char* family :
       {"frontdoor_requests_total counter", "frontdoor_upstream_up gauge",
        "frontdoor_upstream_active_requests gauge", "frontdoor_upstream_failures_total counter",
        "frontdoor_upstream_retries_total counter", "frontdoor_request_duration_seconds histogram",
        "frontdoor_connections_active gauge", "frontdoor_draining gauge"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + "\n"), std::string::npos) << family;
  }
  // A hand-built empty histogram still has its +Inf bucket, sum and count.
  EXPECT_NE(text.find("frontdoor_request_duration_seconds_bucket{le=\"+Inf\"} 0\n"
                      "frontdoor_request_duration_seconds_sum 0\n"
                      "frontdoor_request_duration_seconds_count 0\n"),
            std::string::npos);
  EXPECT_EQ(text.find("frontdoor_upstream_up{"), std::string::npos);
  EXPECT_NE(text.find("frontdoor_draining 0\n"), std::string::npos);
}

TEST(RenderMetrics, EscapesLabelValues) {
  AdminView v;
  v.draining = true;
  UpstreamView u;
  u.name = "a\\b\"c\nd";
  u.retries = 1;
  v.upstreams.push_back(u);
  std::string text = render_metrics(v);
  EXPECT_NE(text.find("frontdoor_upstream_retries_total{upstream=\"a\\\\b\\\"c\\nd\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("frontdoor_draining 1\n"), std::string::npos);
}

TEST(RenderMetrics, HistogramBoundsUseShortestDecimals) {
  AdminView v;
  v.request_duration.bounds = {0.1, 1e-5, 123456.5, 3};
  v.request_duration.buckets = {1, 2, 3, 4, 5};
  v.request_duration.count = 5;
  v.request_duration.sum_seconds = 0.30000000000000004;
  std::string text = render_metrics(v);
  EXPECT_NE(text.find("{le=\"0.1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("{le=\"1e-05\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("{le=\"123456.5\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("{le=\"3\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("{le=\"+Inf\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("_sum 0.30000000000000004\n"), std::string::npos);
}

TEST(RenderStatus, Shape) {
  std::string text = render_status(small_view());
  // Pretty-printed with a 2-space indent, keys in the documented order.
  EXPECT_EQ(text.rfind("{\n  \"version\": \"0.1.0\",\n  \"started_at\": ", 0), 0u) << text;

  json doc = json::parse(text);
  EXPECT_EQ(doc["version"], "0.1.0");
  EXPECT_EQ(doc["started_at"], "2026-11-25T11:17:12.123Z");
  EXPECT_EQ(doc["draining"], false);
  EXPECT_EQ(doc["connections_active"], 7);
  EXPECT_EQ(doc["config"],
            json({{"source", "/etc/frontdoor/frontdoor.yaml"},
                  {"generation", 3},
                  {"loaded_at", "2026-11-25T12:00:00.000Z"},
                  {"reloads", {{"success", 2}, {"failure", 1}}},
                  {"last_reload_success", "2026-11-25T12:00:00.000Z"},
                  {"last_reload_failure", "2026-11-25T11:59:00.000Z"},
                  {"last_reload_error", "frontdoor.yaml:3:5: unknown key \"bogus\""}}));

  ASSERT_EQ(doc["upstreams"].size(), 1u);
  const json& up = doc["upstreams"][0];
  EXPECT_EQ(up["name"], "app");
  EXPECT_EQ(up["balance"], "round_robin");
  EXPECT_EQ(up["retries"], 2);
  EXPECT_EQ(up["unserved"], json({{"503", 4}}));

  ASSERT_EQ(up["servers"].size(), 2u);
  const json& a = up["servers"][0];
  EXPECT_EQ(a["address"], "10.0.0.1:8000");
  EXPECT_EQ(a["name"], "app-1:8000");
  EXPECT_EQ(a["health"], "up");
  EXPECT_EQ(a["up"], true);
  EXPECT_EQ(a["passive_down"], false);
  EXPECT_EQ(a["last_check"], json({{"time", "2026-11-25T11:18:00.000Z"}, {"result", "pass"}}));
  EXPECT_EQ(a["consecutive_passes"], 5);
  EXPECT_EQ(a["consecutive_failures"], 0);
  EXPECT_EQ(a["active"], 2);
  EXPECT_EQ(a["requests"], 11);
  EXPECT_EQ(a["failures"], 1);
  EXPECT_EQ(a["responses"], json({{"200", 10}, {"502", 1}}));

  const json& b = up["servers"][1];
  EXPECT_EQ(b["address"], "10.0.0.2:8000");
  EXPECT_EQ(b["health"], "unknown");
  EXPECT_EQ(b["up"], false);
  EXPECT_EQ(b["passive_down"], true);
  ASSERT_TRUE(b.contains("last_check"));
  EXPECT_TRUE(b["last_check"].is_null());
  EXPECT_EQ(b["consecutive_failures"], 3);
  EXPECT_TRUE(b["responses"].is_object());
  EXPECT_TRUE(b["responses"].empty());

  ASSERT_EQ(doc["certificates"].size(), 1u);
  const json& c = doc["certificates"][0];
  EXPECT_EQ(c["names"], json({"example.com", "www.example.com"}));
  EXPECT_EQ(c["issuer"], "CN=Test CA");
  EXPECT_EQ(c["not_after"], "2027-02-23T00:00:00Z");
  EXPECT_EQ(c["source"], "acme");
  EXPECT_EQ(c["next_renewal"], "2027-01-24T00:00:00Z");
  ASSERT_TRUE(c.contains("last_error"));
  EXPECT_TRUE(c["last_error"].is_null());
}

TEST(RenderStatus, GroupsServersUnderTheirUpstreamInViewOrder) {
  AdminView v;
  for (const char* name : {"web", "api"}) {
    UpstreamView u;
    u.name = name;
    v.upstreams.push_back(u);
  }
  auto add_server = [&v](const char* upstream, const char* address) {
    ServerView s;
    s.upstream = upstream;
    s.address = address;
    v.servers.push_back(s);
  };
  add_server("api", "10.0.1.1:80");
  add_server("web", "10.0.0.1:80");
  add_server("api", "10.0.1.2:80");
  add_server("web", "10.0.0.2:80");

  CertificateView c;
  c.source = "file";
  c.last_error = "order failed";
  v.certificates.push_back(c);

  json doc = json::parse(render_status(v));
  ASSERT_EQ(doc["upstreams"].size(), 2u);
  EXPECT_EQ(doc["upstreams"][0]["name"], "web");
  EXPECT_EQ(doc["upstreams"][0]["servers"][0]["address"], "10.0.0.1:80");
  EXPECT_EQ(doc["upstreams"][0]["servers"][1]["address"], "10.0.0.2:80");
  EXPECT_EQ(doc["upstreams"][1]["name"], "api");
  EXPECT_EQ(doc["upstreams"][1]["servers"][0]["address"], "10.0.1.1:80");
  EXPECT_EQ(doc["upstreams"][1]["servers"][1]["address"], "10.0.1.2:80");
  EXPECT_TRUE(doc["upstreams"][1]["unserved"].is_object());
  EXPECT_TRUE(doc["certificates"][0]["next_renewal"].is_null());
  EXPECT_EQ(doc["certificates"][0]["last_error"], "order failed");
  EXPECT_TRUE(doc["certificates"][0]["names"].is_array());
}

TEST(RenderStatus, EmptyViewHasEmptyArraysAndInvalidUtf8IsReplaced) {
  AdminView v;
  v.version = "bad\xff";
  json doc = json::parse(render_status(v));
  EXPECT_TRUE(doc["upstreams"].is_array());
  EXPECT_TRUE(doc["upstreams"].empty());
  EXPECT_TRUE(doc["certificates"].is_array());
  EXPECT_EQ(doc["version"], "bad\xEF\xBF\xBD");
  // No reload yet: the times and the error are null, not empty strings.
  EXPECT_EQ(doc["config"]["generation"], 1);
  EXPECT_TRUE(doc["config"]["last_reload_success"].is_null());
  EXPECT_TRUE(doc["config"]["last_reload_failure"].is_null());
  EXPECT_TRUE(doc["config"]["last_reload_error"].is_null());
}

}  // namespace
}  // namespace fd::proxy
