#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "acme/crypto.h"
#include "acme/http_client.h"
#include "common/result.h"

namespace fd::acme {

enum class ChallengeType { http01, tls_alpn01 };

// Makes challenge answers reachable while the CA validates (the proxy's ChallengeStore in
// practice). Called from the ACME thread; implementations must be thread-safe.
class ChallengeResponder {
 public:
  virtual ~ChallengeResponder() = default;
  virtual void add_http01(const std::string& token, const std::string& key_authorization) = 0;
  virtual void remove_http01(const std::string& token) = 0;
  virtual void add_tls_alpn01(const std::string& name, const ChallengeCertificate& cert) = 0;
  virtual void remove_tls_alpn01(const std::string& name) = 0;
};

struct ClientOptions {
  std::string directory_url;
  std::string email;                       // "" = no contact
  std::string eab_kid;                     // External Account Binding, both or neither
  std::string eab_hmac_key;                // base64url
  std::chrono::seconds order_timeout{90};  // one order, start to certificate
  // How the client waits between polls; tests pass a fake. Default: sleep_for.
  std::function<void(std::chrono::milliseconds)> sleep;
  // Asked before each wait: true abandons the order (shutdown). Empty: never.
  std::function<bool()> cancelled;
};

// ACME's suggested renewal window for a certificate (RFC 9773).
struct RenewalInfo {
  std::chrono::system_clock::time_point start;
  std::chrono::system_clock::time_point end;
  std::chrono::seconds retry_after{21600};  // when to ask again
};

// An RFC 8555 client for one account on one CA. Blocking; used only by the ACME thread.
// Nonces: every response's Replay-Nonce is kept for the next request; a badNonce error is
// retried with the nonce it carries. Problem documents become errors "TYPE: DETAIL".
class Client {
 public:
  Client(HttpClient& http, const EcKey& account_key, ClientOptions options);

  // Fetches the directory and registers the account, or finds it when it exists (a CA that
  // forgot it, like a restarted Pebble, gets a new registration).
  Result<void> ensure_account();
  const std::string& account_url() const { return account_url_; }
  // True when the directory offers renewalInfo (ARI). Valid after ensure_account().
  bool has_renewal_info() const { return !renewal_info_url_.empty(); }

  // Orders a certificate for |names|: solves each pending authorization with |type| through
  // |responder| (removing the answers afterwards), finalizes with a CSR from |cert_key|, polls
  // with Retry-After honoured, and returns the PEM chain. |replaces|: ARI certificate id of the
  // certificate this one replaces ("" for none).
  Result<std::string> order_certificate(const std::vector<std::string>& names, ChallengeType type,
                                        const EcKey& cert_key, ChallengeResponder& responder,
                                        const std::string& replaces);

  // ARI certificate identifier of the leaf of |chain_pem|: base64url(AKI keyIdentifier) "."
  // base64url(serial DER content octets).
  static Result<std::string> renewal_id(const std::string& chain_pem);
  // GETs renewalInfo for |renewal_id|.
  Result<RenewalInfo> renewal_info(const std::string& renewal_id);

 private:
  HttpClient& http_;
  const EcKey& key_;
  ClientOptions options_;
  std::string directory_url_;
  std::string new_nonce_url_;
  std::string new_account_url_;
  std::string new_order_url_;
  std::string renewal_info_url_;
  std::string account_url_;
  std::string nonce_;
};

}  // namespace fd::acme
