#include "proxy/admin_render.h"

#include <charconv>
#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

namespace fd::proxy {

namespace {

// ordered_json keeps keys in insertion order, so /status reads in the documented order rather
// than alphabetically.
using Json = nlohmann::ordered_json;

Json codes_json(const std::vector<std::pair<int, uint64_t>>& codes) {
  Json out = Json::object();
  for (const auto& [code, n] : codes) {
    out[std::to_string(code)] = n;
  }
  return out;
}

Json null_if_empty(const std::string& s) {
  return s.empty() ? Json(nullptr) : Json(s);
}

Json server_json(const ServerView& s) {
  Json last_check = nullptr;
  if (s.checked) {
    last_check = Json{{"time", s.last_check_time}, {"result", s.last_check_result}};
  }
  return Json{
      {"address", s.address},
      {"name", s.name},
      {"health", s.health},
      {"up", s.up},
      {"passive_down", s.passive_down},
      {"last_check", std::move(last_check)},
      {"consecutive_passes", s.consecutive_passes},
      {"consecutive_failures", s.consecutive_failures},
      {"active", s.active},
      {"requests", s.requests},
      {"failures", s.failures},
      {"responses", codes_json(s.responses_by_code)},
  };
}

Json upstream_json(const UpstreamView& u, const std::vector<ServerView>& all_servers) {
  Json servers = Json::array();
  for (const auto& s : all_servers) {
    if (s.upstream == u.name) {
      servers.push_back(server_json(s));
    }
  }
  return Json{
      {"name", u.name},
      {"balance", u.balance},
      {"retries", u.retries},
      {"unserved", codes_json(u.unserved_by_code)},
      {"servers", std::move(servers)},
  };
}

Json certificate_json(const CertificateView& c) {
  return Json{
      {"names", c.names},
      {"issuer", c.issuer},
      {"not_after", c.not_after},
      {"source", c.source},
      {"next_renewal", null_if_empty(c.next_renewal)},
      {"last_error", null_if_empty(c.last_error)},
  };
}

// --- Prometheus text format ---

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

void append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
}

// Shortest decimal that reads back as |d| (0.001, 0.0025, 1, 2.5, 10), as the client libraries
// write bucket bounds; Prometheus' spellings of the special values.
std::string format_double(double d) {
  if (std::isnan(d)) {
    return "NaN";
  }
  if (std::isinf(d)) {
    return d > 0 ? "+Inf" : "-Inf";
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  if (ec != std::errc()) {
    return "NaN";  // cannot happen: 64 bytes hold any double
  }
  return std::string(buf, end);
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, Labels labels, std::string_view value) {
  out.append(name);
  if (labels.size() > 0) {
    out.push_back('{');
    bool first = true;
    for (const auto& [key, val] : labels) {
      if (!first) {
        out.push_back(',');
      }
      first = false;
      out.append(key).append("=\"");
      append_escaped(out, val);
      out.push_back('"');
    }
    out.push_back('}');
  }
  out.append(" ").append(value).append("\n");
}

void requests_total(std::string& out, const AdminView& v) {
  constexpr std::string_view NAME = "frontdoor_requests_total";
  family(out, NAME, "counter",
         "Responses sent to clients by upstream, server and status code; an empty server means "
         "the proxy answered without one, an empty upstream that no upstream was chosen.");
  for (const auto& s : v.servers) {
    for (const auto& [code, n] : s.responses_by_code) {
      sample(out, NAME,
             {{"upstream", s.upstream}, {"server", s.address}, {"code", std::to_string(code)}},
             std::to_string(n));
    }
  }
  for (const auto& u : v.upstreams) {
    for (const auto& [code, n] : u.unserved_by_code) {
      sample(out, NAME, {{"upstream", u.name}, {"server", ""}, {"code", std::to_string(code)}},
             std::to_string(n));
    }
  }
  for (const auto& [code, n] : v.unrouted_by_code) {
    sample(out, NAME, {{"upstream", ""}, {"server", ""}, {"code", std::to_string(code)}},
           std::to_string(n));
  }
}

void server_families(std::string& out, const AdminView& v) {
  constexpr std::string_view UP = "frontdoor_upstream_up";
  family(out, UP, "gauge",
         "Whether the upstream server would receive requests now (1) or not (0).");
  for (const auto& s : v.servers) {
    sample(out, UP, {{"upstream", s.upstream}, {"server", s.address}}, s.up ? "1" : "0");
  }
  constexpr std::string_view ACTIVE = "frontdoor_upstream_active_requests";
  family(out, ACTIVE, "gauge", "Requests in flight to the upstream server.");
  for (const auto& s : v.servers) {
    sample(out, ACTIVE, {{"upstream", s.upstream}, {"server", s.address}},
           std::to_string(s.active));
  }
  constexpr std::string_view FAILURES = "frontdoor_upstream_failures_total";
  family(out, FAILURES, "counter",
         "Connect errors, resets and timeouts before a response from the upstream server.");
  for (const auto& s : v.servers) {
    sample(out, FAILURES, {{"upstream", s.upstream}, {"server", s.address}},
           std::to_string(s.failures));
  }
  constexpr std::string_view RETRIES = "frontdoor_upstream_retries_total";
  family(out, RETRIES, "counter", "Requests retried on another server of the upstream.");
  for (const auto& u : v.upstreams) {
    sample(out, RETRIES, {{"upstream", u.name}}, std::to_string(u.retries));
  }
}

void request_duration(std::string& out, const HistogramView& h) {
  constexpr std::string_view NAME = "frontdoor_request_duration_seconds";
  family(out, NAME, "histogram", "Duration of client requests in seconds.");
  const std::string bucket = std::string(NAME) + "_bucket";
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    uint64_t n = i < h.buckets.size() ? h.buckets[i] : 0;
    sample(out, bucket, {{"le", format_double(h.bounds[i])}}, std::to_string(n));
  }
  // A view built by hand may leave out the +Inf bucket; it equals the count by definition.
  uint64_t inf = h.buckets.size() > h.bounds.size() ? h.buckets[h.bounds.size()] : h.count;
  sample(out, bucket, {{"le", "+Inf"}}, std::to_string(inf));
  sample(out, std::string(NAME) + "_sum", {}, format_double(h.sum_seconds));
  sample(out, std::string(NAME) + "_count", {}, std::to_string(h.count));
}

Json config_json(const ConfigView& c) {
  return Json{
      {"source", c.source},
      {"generation", c.generation},
      {"loaded_at", c.loaded_at},
      {"reloads", {{"success", c.reloads_success}, {"failure", c.reloads_failure}}},
      {"last_reload_success", null_if_empty(c.last_reload_success)},
      {"last_reload_failure", null_if_empty(c.last_reload_failure)},
      {"last_reload_error", null_if_empty(c.last_reload_error)},
  };
}

}  // namespace

std::string render_status(const AdminView& v) {
  Json upstreams = Json::array();
  for (const auto& u : v.upstreams) {
    upstreams.push_back(upstream_json(u, v.servers));
  }
  Json certificates = Json::array();
  for (const auto& c : v.certificates) {
    certificates.push_back(certificate_json(c));
  }
  Json doc = {
      {"version", v.version},
      {"started_at", v.started_at},
      {"draining", v.draining},
      {"connections_active", v.connections_active},
      {"config", config_json(v.config)},
      {"upstreams", std::move(upstreams)},
      {"certificates", std::move(certificates)},
  };
  return doc.dump(2, ' ', false, Json::error_handler_t::replace);
}

std::string render_metrics(const AdminView& v) {
  std::string out;
  out.reserve(4096);
  requests_total(out, v);
  server_families(out, v);
  request_duration(out, v.request_duration);
  family(out, "frontdoor_certificate_expiry_seconds", "gauge",
         "Unix time at which the certificate served for the name expires.");
  for (const auto& c : v.certificates) {
    for (const auto& name : c.names) {
      if (c.not_after_unix > 0) {
        sample(out, "frontdoor_certificate_expiry_seconds", {{"name", name}, {"source", c.source}},
               std::to_string(c.not_after_unix));
      }
    }
  }
  family(out, "frontdoor_acme_failures_total", "counter",
         "Failed ACME attempts (orders and renewals) since start, per managed name.");
  for (const auto& c : v.certificates) {
    if (c.source == "acme" && !c.names.empty()) {
      sample(out, "frontdoor_acme_failures_total", {{"name", c.names.front()}},
             std::to_string(c.acme_failures));
    }
  }
  family(out, "frontdoor_connections_active", "gauge", "Client connections open now.");
  sample(out, "frontdoor_connections_active", {}, std::to_string(v.connections_active));
  family(out, "frontdoor_draining", "gauge",
         "1 while the proxy is shutting down and draining connections, else 0.");
  sample(out, "frontdoor_draining", {}, v.draining ? "1" : "0");
  family(out, "frontdoor_config_reloads_total", "counter",
         "Configuration reloads (SIGHUP) since start, by outcome.");
  sample(out, "frontdoor_config_reloads_total", {{"result", "success"}},
         std::to_string(v.config.reloads_success));
  sample(out, "frontdoor_config_reloads_total", {{"result", "failure"}},
         std::to_string(v.config.reloads_failure));
  family(out, "frontdoor_config_generation", "gauge",
         "Generation of the configuration in force: 1 at start, one more per successful reload.");
  sample(out, "frontdoor_config_generation", {}, std::to_string(v.config.generation));
  return out;
}

}  // namespace fd::proxy
