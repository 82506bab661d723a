#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "acme/cert_store.h"
#include "acme/challenge_store.h"
#include "common/result.h"
#include "config/config.h"
#include "proxy/admin_view.h"
#include "proxy/ticket_keys.h"

struct ssl_st;
struct ssl_ctx_st;

namespace fd::proxy {

// The server certificates in force: one SSL_CTX per certificate (static files first, then the
// ACME-managed ones), all made by the same factory so callbacks and settings are identical,
// and an SNI table over their names. Immutable once built; the main thread builds a new one
// when a managed certificate changes and posts it to the workers. Each connection holds the
// set it was accepted under (shared_ptr), so contexts and table outlive its handshake.
class TlsContextSet {
 public:
  // |managed| (may be null) holds the ACME certificates so far; |challenges| (may be null)
  // answers tls-alpn-01. Main thread. Fails only on unusable static files.
  // |tickets| (may be null: OpenSSL's own per-context keys) encrypts session tickets.
  static Result<std::shared_ptr<const TlsContextSet>> build(const config::Tls& tls,
                                                            const acme::CertificateMap* managed,
                                                            const acme::ChallengeStore* challenges,
                                                            const TicketKeys* tickets);
  ~TlsContextSet();
  TlsContextSet(const TlsContextSet&) = delete;
  TlsContextSet& operator=(const TlsContextSet&) = delete;

  // A new server-side SSL on the default context; the SNI callback moves it to the context
  // whose names match. The caller owns the result (Transport::accept_tls takes it).
  ssl_st* new_ssl() const;

  // Index of the certificate for |server_name|: exact name (managed before static), then
  // wildcard, then the default 0; -1 for a managed name that has no certificate yet, or when
  // there is no certificate at all. Any thread.
  int select(std::string_view server_name) const;

  // Names, issuer and expiry of each certificate, for /status. Any thread.
  std::vector<CertificateView> describe() const;

 private:
  struct Entry {
    ssl_ctx_st* ctx;
    std::vector<std::string> names;  // DNS SANs (or the CN without SANs), lowercase
    CertificateView view;
  };

  TlsContextSet() = default;
  static int on_client_hello(ssl_st* ssl, int* alert, void* arg);
  static int on_servername(ssl_st* ssl, int* alert, void* arg);
  static int on_alpn(ssl_st* ssl, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void* arg);
  static int on_alpn_challenge(ssl_st* ssl, const unsigned char** out, unsigned char* outlen,
                               const unsigned char* in, unsigned int inlen, void* arg);
  // An SSL_CTX with the project's TLS settings and callbacks, without a certificate.
  Result<ssl_ctx_st*> new_context() const;
  void add_entry(ssl_ctx_st* ctx, const std::string& source);
  // Answers an acme-tls/1 handshake for |name| with its challenge certificate.
  bool use_challenge(ssl_st* ssl, const std::string& name) const;
  bool owns(const ssl_ctx_st* ctx) const;

  int min_version_ = 0;
  const acme::ChallengeStore* challenges_ = nullptr;
  const TicketKeys* tickets_ = nullptr;
  ssl_ctx_st* bare_ = nullptr;  // used as the initial context when no certificate exists yet
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> exact_;
  std::unordered_map<std::string, size_t> wildcard_;  // "example.com" for "*.example.com"
  std::set<std::string, std::less<>> pending_;        // managed names without a certificate
};

}  // namespace fd::proxy
