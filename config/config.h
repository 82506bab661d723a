#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace fd::config {

using Duration = std::chrono::milliseconds;

// Where a value was written in the YAML file (1-based), so validation and reload can report
// FILE:LINE:COL. {0, 0} for values that were defaulted or built in code (quick mode).
struct Mark {
  int line = 0;
  int col = 0;
};

// "host:port", "[v6]:port" or "*:port", split. |host| is empty for "*" and never has brackets.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};

struct Listener {
  std::string address;  // as written, e.g. "0.0.0.0:443"
  HostPort endpoint;
  bool tls = false;
  bool redirect_https = false;
  // On a redirect_https listener: the port the Location names, for when the public port is not
  // the one frontdoor binds (a container's 8443 published as 443). 0 = the first TLS
  // listener's port.
  uint16_t https_port = 0;
  // On a TLS listener: Strict-Transport-Security max-age for its responses; 0 = no header.
  Duration hsts{0};
  Mark mark;
};

struct Certificate {
  std::string cert;  // path to a PEM file: leaf first, then chain
  std::string key;   // path to a PEM private key file
  Mark mark;
};

// Managed certificates (ACME, RFC 8555): one certificate per domain name.
struct Acme {
  std::string directory;  // the CA's directory URL
  std::string email;      // account contact, optional
  std::vector<std::string> domains;
  std::string challenge = "http-01";  // http-01 | tls-alpn-01
  std::string storage = "/var/lib/frontdoor";
  std::string ca_bundle;  // extra roots to trust for the ACME server itself, optional
  // renew: auto = ARI window if offered, else 1/3 of the lifetime left (1/2 for <= 10 days);
  // or a fixed duration before expiry.
  bool renew_auto = true;
  Duration renew_before{0};
  std::string eab_kid;       // External Account Binding, both or neither
  std::string eab_hmac_key;  // base64url
  Mark mark;
};

struct Tls {
  std::string min_version = "1.2";  // "1.2" | "1.3"
  std::vector<Certificate> certificates;
  bool acme_enabled = false;  // the tls.acme section is present
  Acme acme;
};

struct ServerSpec {
  std::string address;  // as written, "app-1:8000"
  HostPort endpoint;
  int weight = 1;
  Mark mark;
};

// Active health checks of an upstream's servers (absent = passive detection only).
struct HealthCheck {
  // GET with Host of the server; 2xx and 3xx are healthy. Empty (quick mode only, not
  // accepted in YAML): a check is a TCP connect.
  std::string path = "/";
  Duration interval{5000};
  Duration timeout{2000};
  uint32_t healthy_after = 2;    // consecutive passes to bring a server back
  uint32_t unhealthy_after = 3;  // consecutive failures to take it out
  Mark mark;
};

struct Upstream {
  std::string name;
  std::vector<ServerSpec> servers;
  std::string balance = "round_robin";  // round_robin | least_conn | random_two
  // A server given by host name is re-resolved this often; each address is its own server.
  Duration resolve_interval{5000};
  bool health_check_enabled = false;
  HealthCheck health_check;
  // Passive detection: |max_fails| failures (connect error, reset or timeout before any
  // response byte) within |fail_window| take a server out for |fail_timeout|.
  uint32_t max_fails = 1;
  Duration fail_window{10000};
  Duration fail_timeout{10000};
  // A request that failed before any response byte is retried on another server at most
  // |retries| times, within |retry_timeout| of its first attempt, when that is safe.
  uint32_t retries = 2;
  Duration retry_timeout{10000};
  Duration connect_timeout{3000};
  // Longest wait for the next byte from the server once the request has been sent (nginx's
  // proxy_read_timeout): before any response byte it yields a 504.
  Duration response_timeout{60000};
  // Pooled keep-alive connections to each server: how many idle ones each worker keeps, and
  // how long an idle one is kept.
  uint32_t max_idle_connections = 256;
  Duration idle_timeout{60000};
  Mark mark;
};

struct RouteMatch {
  std::string host;               // empty = any host; "*.example.com" matches one or more labels
  std::string path_prefix = "/";  // plain byte prefix of the request path
};

struct Route {
  RouteMatch match;
  std::string upstream;
  Mark mark;
  Mark upstream_mark;
};

struct Admin {
  bool enabled = false;  // the admin section is present
  std::string address = "127.0.0.1:9901";
  HostPort endpoint{"127.0.0.1", 9901};
  Mark mark;
};

struct Log {
  std::string level = "info";  // debug | info | warn | error
  bool access = true;
};

struct Limits {
  uint32_t max_connections = 10000;  // per process
  Duration header_timeout{10000};    // whole request head, counted from accept / previous request
  Duration idle_timeout{60000};      // keep-alive idle between requests
  // A request body must be complete within |body_timeout| of its head (0 = no limit), and
  // after a 5 s grace arrive at |body_min_rate| bytes/s or more (0 = no minimum), or the
  // request is cut with 408.
  Duration body_timeout{60000};
  uint64_t body_min_rate = 1024;
  uint32_t max_header_bytes = 65536;
  uint32_t max_headers = 100;  // header fields in a request head (431 beyond)
  // Requests on one connection before it is closed (nginx's keepalive_requests): on HTTP/1.1
  // the last response says Connection: close, on HTTP/2 a GOAWAY follows the last stream.
  uint32_t max_requests_per_connection = 1000;
  uint64_t max_body_bytes = 0;  // 0 = unlimited
};

// One complete, validated configuration. Immutable once built: the proxy shares it between
// threads as shared_ptr<const Config>.
struct Config {
  std::string source;  // file path it was loaded from, or "<quick>"
  std::vector<Listener> listeners;
  Tls tls;
  std::vector<Upstream> upstreams;
  std::vector<Route> routes;
  Admin admin;
  Log log;
  Limits limits;
  Duration shutdown_timeout{10000};
  // After SIGTERM, /ready answers 503 but listeners keep accepting this long before the drain
  // starts, so that load balancers polling /ready (Kubernetes endpoints, cloud LBs) stop sending
  // new connections first; 0 = drain at once. A second SIGTERM/SIGINT skips the rest.
  Duration shutdown_delay{0};
  unsigned workers = 0;  // 0 = auto (one per CPU core)
  std::string user;      // started as root: become this user once listening; empty = stay
};

}  // namespace fd::config
