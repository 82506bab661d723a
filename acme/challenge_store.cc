#include "acme/challenge_store.h"

#include "common/log.h"

namespace fd::acme {

void ChallengeStore::share_through(const std::string& dir, const std::string& directory_url) {
  shared_.emplace(dir, directory_url);
}

void ChallengeStore::add_http01(const std::string& token, const std::string& key_authorization) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    http01_[token] = key_authorization;
  }
  if (shared_) {
    if (auto rc = shared_->write_challenge(token, key_authorization); !rc) {
      log::warn("cannot share the http-01 answer through storage",
                {{"reason", rc.error().message}});
    }
  }
}

void ChallengeStore::remove_http01(const std::string& token) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    http01_.erase(token);
  }
  if (shared_) {
    shared_->remove_challenge(token);
  }
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = http01_.find(token);
    if (it != http01_.end()) {
      return it->second;
    }
  }
  if (shared_) {
    // Another replica's order: the CA's request may reach any of us.
    if (auto answer = shared_->read_challenge(std::string(token))) {
      return *answer;
    }
  }
  return std::nullopt;
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
