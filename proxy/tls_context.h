#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "proxy/admin_view.h"

struct ssl_st;
struct ssl_ctx_st;

namespace fd::proxy {

// The server certificates of one configuration: one SSL_CTX per certificate, all made by the
// same factory so callbacks and settings are identical, and an SNI table over their names.
// Immutable once built and shared by every connection accepted under it (shared_ptr), so the
// contexts and the table live as long as any handshake that can use them.
class TlsContextSet {
 public:
  // Loads every certificate in |tls| (the first is the default). Main thread.
  static Result<std::shared_ptr<const TlsContextSet>> build(const config::Tls& tls);
  ~TlsContextSet();
  TlsContextSet(const TlsContextSet&) = delete;
  TlsContextSet& operator=(const TlsContextSet&) = delete;

  // A new server-side SSL on the default context; the SNI callback moves it to the context
  // whose names match. The caller owns the result (Transport::accept_tls takes it).
  ssl_st* new_ssl() const;

  // Index of the certificate chosen for |server_name| (exact name, then wildcard, then the
  // default 0). Any thread.
  size_t select(std::string_view server_name) const;

  // Names, issuer and expiry of each certificate, for /status. Any thread.
  std::vector<CertificateView> describe() const;

 private:
  struct Entry {
    ssl_ctx_st* ctx;
    std::vector<std::string> names;  // DNS SANs (or the CN without SANs), lowercase
    CertificateView view;
  };

  TlsContextSet() = default;
  static int on_servername(ssl_st* ssl, int* alert, void* arg);
  static int on_alpn(ssl_st* ssl, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void* arg);
  Result<ssl_ctx_st*> make_context(const config::Tls& tls, const config::Certificate& cert);

  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> exact_;
  std::unordered_map<std::string, size_t> wildcard_;  // "example.com" for "*.example.com"
};

}  // namespace fd::proxy
