#include "config/validate.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "common/file.h"
#include "common/ossl.h"
#include "common/result.h"
#include "config/units.h"

namespace fd::config {
namespace {

std::string quoted(const std::string& text) {
  return "\"" + text + "\"";
}

// Appends diagnostics that point into the config file.
class Reporter {
 public:
  Reporter(const std::string& file, std::vector<Diagnostic>* out) : file_(file), out_(out) {}

  void operator()(Mark at, std::string message) const {
    out_->push_back(Diagnostic{file_, at.line, at.col, std::move(message)});
  }

 private:
  const std::string& file_;
  std::vector<Diagnostic>* out_;
};

void check_listeners(const Config& cfg, const Reporter& report) {
  if (cfg.listeners.empty()) {
    report({}, "at least one listener is required");
  }
  std::set<std::pair<std::string, uint16_t>> endpoints;
  // A TLS listener can serve static certificates, managed (ACME) ones, or both.
  bool acme_domains = cfg.tls.acme_enabled && !cfg.tls.acme.domains.empty();
  for (const Listener& listener : cfg.listeners) {
    // Compared as parsed so "*:80" and ":80" count as the same address.
    if (!endpoints.emplace(listener.endpoint.host, listener.endpoint.port).second) {
      report(listener.mark, "duplicate listen address " + quoted(listener.address));
    }
    if (listener.tls && cfg.tls.certificates.empty() && !acme_domains) {
      report(listener.mark,
             "listener " + listener.address + " has tls: true but " +
                 (cfg.tls.acme_enabled ? "tls.certificates and tls.acme.domains are empty"
                                       : "tls.certificates is empty"));
    }
  }
}

void check_upstreams(const Config& cfg, const Reporter& report) {
  if (cfg.upstreams.empty()) {
    report({}, "at least one upstream is required");
  }
  std::set<std::string> names;
  for (const Upstream& upstream : cfg.upstreams) {
    if (!names.insert(upstream.name).second) {
      report(upstream.mark, "duplicate upstream " + quoted(upstream.name));
    }
    if (upstream.servers.empty()) {
      report(upstream.mark, "upstream " + quoted(upstream.name) + " has no servers");
    }
    for (const ServerSpec& server : upstream.servers) {
      if (server.weight < 1) {
        report(server.mark, "server " + server.address + " in upstream " + quoted(upstream.name) +
                                " has weight " + std::to_string(server.weight) +
                                "; it must be at least 1");
      }
    }
    // The loader reports this at the timeout value; this catches configs built in code.
    const HealthCheck& hc = upstream.health_check;
    if (upstream.health_check_enabled && hc.timeout > hc.interval) {
      report(hc.mark, "upstream " + quoted(upstream.name) + ": health_check timeout " +
                          format_duration(hc.timeout) + " must not be longer than its interval " +
                          format_duration(hc.interval));
    }
  }
}

// A listen or admin host, as the kernel sees it when binding.
struct BindHost {
  int family = AF_UNSPEC;  // AF_INET, AF_INET6, or AF_UNSPEC for a name that resolves to either
  bool any = false;        // the family's any-address: "" and "*" bind 0.0.0.0, or "::"
  std::string text;        // canonical literal, or the name in lower case
};

BindHost bind_host(const std::string& host) {
  if (host.empty()) {
    return {AF_INET, true, "0.0.0.0"};
  }
  in_addr v4{};
  in6_addr v6{};
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    inet_ntop(AF_INET, &v4, buf, sizeof buf);
    return {AF_INET, v4.s_addr == htonl(INADDR_ANY), buf};
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    inet_ntop(AF_INET6, &v6, buf, sizeof buf);
    return {AF_INET6, IN6_IS_ADDR_UNSPECIFIED(&v6) != 0, buf};
  }
  std::string name = host;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return {AF_UNSPEC, false, name};
}

// The admin listener cannot share a port with a proxy listener: the same address, or one that
// the other's any-address covers (IPv6 listeners are v6-only, so "[::]" does not cover IPv4).
// A host name is assumed to possibly resolve into either family.
void check_admin(const Config& cfg, const Reporter& report) {
  if (!cfg.admin.enabled) {
    return;
  }
  const Admin& admin = cfg.admin;
  BindHost admin_host = bind_host(admin.endpoint.host);
  for (const Listener& listener : cfg.listeners) {
    if (listener.endpoint.port != admin.endpoint.port) {
      continue;
    }
    BindHost listen_host = bind_host(listener.endpoint.host);
    bool families_meet = admin_host.family == listen_host.family ||
                         admin_host.family == AF_UNSPEC || listen_host.family == AF_UNSPEC;
    if (admin_host.text == listen_host.text && admin_host.family == listen_host.family) {
      report(admin.mark, "admin address " + admin.address + " is also a listen address");
      return;
    }
    if (families_meet && (admin_host.any || listen_host.any)) {
      report(admin.mark,
             "admin address " + admin.address + " overlaps listen address " + listener.address);
      return;
    }
  }
}

void check_routes(const Config& cfg, const Reporter& report) {
  if (cfg.routes.empty()) {
    report({}, "at least one route is required");
  }
  std::set<std::string> names;
  for (const Upstream& upstream : cfg.upstreams) {
    names.insert(upstream.name);
  }
  for (const Route& route : cfg.routes) {
    if (names.count(route.upstream) == 0) {
      report(route.upstream_mark, "route refers to unknown upstream " + quoted(route.upstream));
    }
  }
}

// Passphrase callback that refuses: without one, OpenSSL would prompt on the terminal.
int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

// True when the last failed PEM read only ran out of PEM blocks.
bool at_end_of_pem() {
  unsigned long code = ERR_peek_last_error();
  return ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE;
}

fd::ossl::BioPtr memory_bio(const std::string& data) {
  return fd::ossl::BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Reads and parses a PEM file of a leaf certificate followed by its chain; returns the leaf.
Result<fd::ossl::X509Ptr> load_chain(const std::string& path) {
  auto pem = read_file(path);
  if (!pem) {
    return make_error(Errc::io,
                      "cannot read certificate file " + path + ": " + pem.error().message);
  }
  ERR_clear_error();
  fd::ossl::BioPtr bio = memory_bio(*pem);
  bool asked = false;
  fd::ossl::X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, &asked));
  if (!leaf) {
    std::string why = at_end_of_pem() ? "no PEM certificate found" : fd::ossl::errors();
    ERR_clear_error();
    return make_error(Errc::tls, "cannot parse certificate file " + path + ": " + why);
  }
  while (true) {
    fd::ossl::X509Ptr next(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, &asked));
    if (!next) {
      break;
    }
  }
  if (!at_end_of_pem()) {
    return make_error(Errc::tls,
                      "cannot parse certificate chain in " + path + ": " + fd::ossl::errors());
  }
  ERR_clear_error();
  return leaf;
}

Result<fd::ossl::PkeyPtr> load_key(const std::string& path) {
  auto pem = read_file(path);
  if (!pem) {
    return make_error(Errc::io, "cannot read key file " + path + ": " + pem.error().message);
  }
  // OpenSSL 3's decoders report a file without any key only as "unsupported", so look for the
  // PEM label ourselves. Every private key label ends like this (PKCS#8, RSA, EC, ENCRYPTED).
  if (pem->find("PRIVATE KEY-----") == std::string::npos) {
    return make_error(Errc::tls, "cannot parse key file " + path + ": no PEM private key found");
  }
  ERR_clear_error();
  fd::ossl::BioPtr bio = memory_bio(*pem);
  bool asked = false;
  fd::ossl::PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, &asked));
  if (key) {
    return key;
  }
  std::string why =
      asked ? "the key is encrypted; a key without passphrase is needed" : fd::ossl::errors();
  ERR_clear_error();
  return make_error(Errc::tls, "cannot parse key file " + path + ": " + why);
}

// Reports an unusable certificate file and an unusable key file separately, so one --check run
// shows both.
void check_certificate(const Certificate& cert, const Reporter& report) {
  auto leaf = load_chain(cert.cert);
  auto key = load_key(cert.key);
  if (!leaf) {
    report(cert.mark, leaf.error().message);
  }
  if (!key) {
    report(cert.mark, key.error().message);
  }
  if (leaf && key && X509_check_private_key(leaf->get(), key->get()) != 1) {
    ERR_clear_error();
    report(cert.mark, "key " + cert.key + " does not match certificate " + cert.cert);
  }
}

void check_certificates(const Config& cfg, const Reporter& report) {
  for (const Certificate& cert : cfg.tls.certificates) {
    check_certificate(cert, report);
  }
}

// Reads and parses the extra roots libcurl trusts for the ACME server: PEM certificates, in any
// number, with text between them as in the usual bundles. Blocks of other types are skipped.
Result<void> load_ca_bundle(const std::string& path) {
  auto pem = read_file(path);
  if (!pem) {
    return make_error(Errc::io, "cannot read ca_bundle file " + path + ": " + pem.error().message);
  }
  ERR_clear_error();
  fd::ossl::BioPtr bio = memory_bio(*pem);
  bool asked = false;
  int count = 0;
  // _AUX also reads "TRUSTED CERTIFICATE" blocks, which OpenSSL accepts as roots.
  while (fd::ossl::X509Ptr(PEM_read_bio_X509_AUX(bio.get(), nullptr, refuse_passphrase, &asked))) {
    ++count;
  }
  if (!at_end_of_pem()) {
    std::string why = fd::ossl::errors();
    ERR_clear_error();
    return make_error(Errc::tls, "cannot parse ca_bundle file " + path + ": " + why);
  }
  ERR_clear_error();
  if (count == 0) {
    return make_error(Errc::tls,
                      "cannot parse ca_bundle file " + path + ": no PEM certificate found");
  }
  return {};
}

// The CA must reach the challenge: http-01 on port 80 through a plain listener (a port mapping
// may stand in between, so any port counts), tls-alpn-01 on 443 through a TLS listener. Problems
// are reported at the tls.acme section: Acme has no mark per key.
void check_acme(const Config& cfg, const Reporter& report) {
  if (!cfg.tls.acme_enabled) {
    return;
  }
  const Acme& acme = cfg.tls.acme;
  // Without any listener, "at least one listener is required" says it all.
  if (!cfg.listeners.empty()) {
    auto is_tls = [](const Listener& listener) { return listener.tls; };
    bool has_tls = std::any_of(cfg.listeners.begin(), cfg.listeners.end(), is_tls);
    bool has_plain = !std::all_of(cfg.listeners.begin(), cfg.listeners.end(), is_tls);
    if (acme.challenge == "http-01" && !has_plain) {
      report(acme.mark,
             "challenge http-01 needs a plain listener (e.g. 0.0.0.0:80) for the CA to reach");
    }
    if (acme.challenge == "tls-alpn-01" && !has_tls) {
      report(acme.mark,
             "challenge tls-alpn-01 needs a TLS listener (e.g. 0.0.0.0:443 with tls: "
             "true) for the CA to reach");
    }
  }
  if (!acme.ca_bundle.empty()) {
    if (auto bundle = load_ca_bundle(acme.ca_bundle); !bundle) {
      report(acme.mark, bundle.error().message);
    }
  }
}

}  // namespace

void validate(const Config& cfg, std::vector<Diagnostic>* out) {
  Reporter report(cfg.source, out);
  check_listeners(cfg, report);
  check_upstreams(cfg, report);
  check_routes(cfg, report);
  check_admin(cfg, report);
  check_certificates(cfg, report);
  check_acme(cfg, report);
}

}  // namespace fd::config
