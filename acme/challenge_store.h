#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "acme/client.h"
#include "acme/storage.h"

namespace fd::acme {

// Challenge answers while the CA validates: http-01 key authorizations by token and
// tls-alpn-01 certificates by name. The ACME thread writes; the proxy's workers read, only for
// /.well-known/acme-challenge/ requests and acme-tls/1 handshakes, so a mutex is fine here.
class ChallengeStore : public ChallengeResponder {
 public:
  // Also keeps http-01 answers in |storage|'s shared folder and looks there on a miss, so
  // replicas behind one load balancer answer each other's challenges. Call before use.
  void share_through(const std::string& dir, const std::string& directory_url);

  void add_http01(const std::string& token, const std::string& key_authorization) override;
  void remove_http01(const std::string& token) override;
  void add_tls_alpn01(const std::string& name, const ChallengeCertificate& cert) override;
  void remove_tls_alpn01(const std::string& name) override;

  // The key authorization for |token|, if a challenge is open for it. Any thread.
  std::optional<std::string> http01(std::string_view token) const;
  // The tls-alpn-01 certificate for |name| (lowercase), if one is open. Any thread.
  std::optional<ChallengeCertificate> tls_alpn01(std::string_view name) const;

 private:
  std::optional<Storage> shared_;
  mutable std::mutex mutex_;
  std::map<std::string, std::string, std::less<>> http01_;
  std::map<std::string, ChallengeCertificate, std::less<>> tls_alpn01_;
};

}  // namespace fd::acme
