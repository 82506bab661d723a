#include "config/diff.h"

#include <algorithm>
#include <tuple>

namespace fd::config {
namespace {

bool same_endpoint(const HostPort& a, const HostPort& b) {
  return a.host == b.host && a.port == b.port;
}

bool same_health(const HealthCheck& a, const HealthCheck& b) {
  return std::tie(a.path, a.interval, a.timeout, a.healthy_after, a.unhealthy_after) ==
         std::tie(b.path, b.interval, b.timeout, b.healthy_after, b.unhealthy_after);
}

bool same_upstream(const Upstream& a, const Upstream& b) {
  if (a.servers.size() != b.servers.size()) {
    return false;
  }
  for (size_t i = 0; i < a.servers.size(); ++i) {
    if (a.servers[i].address != b.servers[i].address ||
        a.servers[i].weight != b.servers[i].weight) {
      return false;
    }
  }
  if (a.health_check_enabled != b.health_check_enabled ||
      (a.health_check_enabled && !same_health(a.health_check, b.health_check))) {
    return false;
  }
  return std::tie(a.balance, a.resolve_interval, a.max_fails, a.fail_window, a.fail_timeout,
                  a.retries, a.retry_timeout, a.connect_timeout, a.response_timeout,
                  a.max_idle_connections, a.idle_timeout) ==
         std::tie(b.balance, b.resolve_interval, b.max_fails, b.fail_window, b.fail_timeout,
                  b.retries, b.retry_timeout, b.connect_timeout, b.response_timeout,
                  b.max_idle_connections, b.idle_timeout);
}

bool same_routes(const std::vector<Route>& a, const std::vector<Route>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tie(a[i].match.host, a[i].match.path_prefix, a[i].upstream) !=
        std::tie(b[i].match.host, b[i].match.path_prefix, b[i].upstream)) {
      return false;
    }
  }
  return true;
}

bool same_certificates(const Tls& a, const Tls& b) {
  if (a.min_version != b.min_version || a.certificates.size() != b.certificates.size()) {
    return false;
  }
  for (size_t i = 0; i < a.certificates.size(); ++i) {
    if (a.certificates[i].cert != b.certificates[i].cert ||
        a.certificates[i].key != b.certificates[i].key) {
      return false;
    }
  }
  return true;
}

bool same_acme(const Tls& a, const Tls& b) {
  if (a.acme_enabled != b.acme_enabled) {
    return false;
  }
  const Acme& x = a.acme;
  const Acme& y = b.acme;
  return !a.acme_enabled ||
         std::tie(x.directory, x.email, x.domains, x.challenge, x.storage, x.ca_bundle,
                  x.renew_auto, x.renew_before, x.eab_kid, x.eab_hmac_key) ==
             std::tie(y.directory, y.email, y.domains, y.challenge, y.storage, y.ca_bundle,
                      y.renew_auto, y.renew_before, y.eab_kid, y.eab_hmac_key);
}

// The names in |from| that |other| lacks.
std::vector<std::string> missing(const std::vector<std::string>& from,
                                 const std::vector<std::string>& other) {
  std::vector<std::string> out;
  for (const auto& n : from) {
    if (std::find(other.begin(), other.end(), n) == other.end()) {
      out.push_back(n);
    }
  }
  return out;
}

const Listener* find_listener(const std::vector<Listener>& list, const HostPort& endpoint) {
  for (const auto& l : list) {
    if (same_endpoint(l.endpoint, endpoint)) {
      return &l;
    }
  }
  return nullptr;
}

const Upstream* find_upstream(const std::vector<Upstream>& list, const std::string& name) {
  for (const auto& u : list) {
    if (u.name == name) {
      return &u;
    }
  }
  return nullptr;
}

}  // namespace

ConfigDiff diff(const Config& before, const Config& after) {
  ConfigDiff d;
  for (const auto& l : after.listeners) {
    const Listener* old = find_listener(before.listeners, l.endpoint);
    if (old == nullptr) {
      d.listeners_added.push_back(l.address);
    } else if (old->tls != l.tls || old->redirect_https != l.redirect_https ||
               old->https_port != l.https_port || old->hsts != l.hsts) {
      d.listeners_changed.push_back(l.address);
    }
  }
  for (const auto& l : before.listeners) {
    if (find_listener(after.listeners, l.endpoint) == nullptr) {
      d.listeners_removed.push_back(l.address);
    }
  }
  for (const auto& u : after.upstreams) {
    const Upstream* old = find_upstream(before.upstreams, u.name);
    if (old == nullptr) {
      d.upstreams_added.push_back(u.name);
    } else if (!same_upstream(*old, u)) {
      d.upstreams_changed.push_back(u.name);
    }
  }
  for (const auto& u : before.upstreams) {
    if (find_upstream(after.upstreams, u.name) == nullptr) {
      d.upstreams_removed.push_back(u.name);
    }
  }
  d.routes_changed = !same_routes(before.routes, after.routes);
  d.tls_changed = !same_certificates(before.tls, after.tls);
  d.acme_changed = !same_acme(before.tls, after.tls);
  static const std::vector<std::string> NONE;
  const auto& old_domains = before.tls.acme_enabled ? before.tls.acme.domains : NONE;
  const auto& new_domains = after.tls.acme_enabled ? after.tls.acme.domains : NONE;
  d.acme_domains_added = missing(new_domains, old_domains);
  d.acme_domains_removed = missing(old_domains, new_domains);
  if (before.user != after.user) {
    d.restart_needed.push_back("user");
  }
  if (before.workers != after.workers) {
    d.restart_needed.push_back("workers");
  }
  return d;
}

}  // namespace fd::config
