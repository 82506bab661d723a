#include "acme/cert_store.h"

namespace fd::acme {

void CertStore::set_listener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(mutex_);
  listener_ = std::move(listener);
}

void CertStore::publish(std::shared_ptr<const ManagedCertificate> cert) {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto next = std::make_shared<CertificateMap>(*certs_);
    (*next)[cert->name] = std::move(cert);
    certs_ = std::move(next);
    ++version_;
    listener = listener_;
  }
  if (listener) {
    listener();
  }
}

std::shared_ptr<const CertificateMap> CertStore::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return certs_;
}

uint64_t CertStore::version() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return version_;
}

}  // namespace fd::acme
