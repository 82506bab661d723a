#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fd::proxy {

// A plain copy of what /status and /metrics report, gathered on the main thread from the
// atomics the workers and the health checker update. Rendering it is pure (admin_render.h).

struct ServerView {
  std::string upstream;           // upstream (group) name
  std::string address;            // "ip:port"
  std::string name;               // as configured ("app:8000"), which may differ from |address|
  bool up = true;                 // would receive requests now (active and passive state together)
  std::string health;             // "up", "down" or "unknown" (no check result yet)
  bool passive_down = false;      // taken out by passive failure detection right now
  bool checked = false;           // has an active check result
  std::string last_check_time;    // RFC 3339, "" if none
  std::string last_check_result;  // "pass", or "fail: <reason>", "" if none
  uint32_t consecutive_passes = 0;
  uint32_t consecutive_failures = 0;
  int64_t active = 0;  // requests in flight
  uint64_t requests = 0;
  uint64_t failures = 0;  // connect errors, resets and timeouts before a response
  std::vector<std::pair<int, uint64_t>> responses_by_code;  // status -> count, non-zero only
};

struct UpstreamView {
  std::string name;
  std::string balance;
  uint64_t retries = 0;
  // Responses the proxy made for this upstream without a server (503: none available).
  std::vector<std::pair<int, uint64_t>> unserved_by_code;
};

struct HistogramView {
  std::vector<double> bounds;     // upper bounds in seconds, ascending, without +Inf
  std::vector<uint64_t> buckets;  // cumulative counts, one per bound, then +Inf
  uint64_t count = 0;
  double sum_seconds = 0;
};

struct CertificateView {
  std::vector<std::string> names;  // SANs the certificate is served for
  std::string issuer;              // issuer DN, one line
  std::string not_after;           // RFC 3339
  std::string source;              // "file" or "acme"
  std::string next_renewal;        // RFC 3339; "" if not managed or not scheduled
  std::string last_error;          // last ACME error; "" if none
  int64_t not_after_unix = 0;      // 0 when there is no certificate yet
  uint64_t acme_failures = 0;      // failed ACME attempts since start
};

// The configuration in force and the reloads so far.
struct ConfigView {
  std::string source;       // the file it was loaded from
  uint64_t generation = 1;  // 1 at start, one more per successful reload
  std::string loaded_at;    // RFC 3339, when the configuration in force was loaded
  uint64_t reloads_success = 0;
  uint64_t reloads_failure = 0;
  std::string last_reload_success;  // RFC 3339, "" if none
  std::string last_reload_failure;  // RFC 3339, "" if none
  std::string last_reload_error;    // first problem of the last failed reload, "" if none
};

struct AdminView {
  std::string version;
  std::string started_at;  // RFC 3339
  bool draining = false;
  uint64_t connections_active = 0;
  ConfigView config;
  std::vector<UpstreamView> upstreams;
  std::vector<ServerView> servers;
  // Responses with no upstream at all (404 no route, 400...), status -> count.
  std::vector<std::pair<int, uint64_t>> unrouted_by_code;
  HistogramView request_duration;
  std::vector<CertificateView> certificates;
};

}  // namespace fd::proxy
