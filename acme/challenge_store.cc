#include "acme/challenge_store.h"

namespace fd::acme {

void ChallengeStore::add_http01(const std::string& token, const std::string& key_authorization) {
  std::lock_guard<std::mutex> lock(mutex_);
  http01_[token] = key_authorization;
}

void ChallengeStore::remove_http01(const std::string& token) {
  std::lock_guard<std::mutex> lock(mutex_);
  http01_.erase(token);
}

void ChallengeStore::add_tls_alpn01(const std::string& name, const ChallengeCertificate& cert) {
  std::lock_guard<std::mutex> lock(mutex_);
  tls_alpn01_[name] = cert;
}

void ChallengeStore::remove_tls_alpn01(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  tls_alpn01_.erase(name);
}

std::optional<std::string> ChallengeStore::http01(std::string_view token) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = http01_.find(token);
  if (it == http01_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::optional<ChallengeCertificate> ChallengeStore::tls_alpn01(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = tls_alpn01_.find(name);
  if (it == tls_alpn01_.end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace fd::acme
