#pragma once

#include <string>

#include "proxy/admin_view.h"

namespace fd::proxy {

// Renders |v| as the /status document: JSON pretty-printed with a 2-space indent, keys in this
// order:
//   {"version", "started_at", "draining", "connections_active",
//    "upstreams": [{"name", "balance", "retries", "unserved": {"503": n, ...},
//                   "servers": [{"address", "name", "health", "up", "passive_down",
//                                "last_check": {"time", "result"} or null,
//                                "consecutive_passes", "consecutive_failures", "active",
//                                "requests", "failures", "responses": {"200": n, ...}}]}],
//    "certificates": [{"names", "issuer", "not_after", "source",
//                      "next_renewal" (null if none), "last_error" (null if none)}]}
// Servers are listed under the upstream named by ServerView::upstream, in |v|'s order; a server
// whose upstream is not in |v.upstreams| is left out. Invalid UTF-8 is replaced, never thrown.
// Pure; any thread (the admin handler calls it on the main thread).
std::string render_status(const AdminView& v);

// Renders |v| in the Prometheus text exposition format 0.0.4 (serve it as
// "text/plain; version=0.0.4; charset=utf-8"). Every family gets its # HELP and # TYPE lines,
// even with no samples: frontdoor_requests_total, frontdoor_upstream_up,
// frontdoor_upstream_active_requests, frontdoor_upstream_failures_total,
// frontdoor_upstream_retries_total, frontdoor_request_duration_seconds (histogram),
// frontdoor_connections_active, frontdoor_draining. Label values are escaped (\\, \", \n).
// Pure; any thread.
std::string render_metrics(const AdminView& v);

}  // namespace fd::proxy
