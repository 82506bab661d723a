#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "acme/crypto.h"

namespace fd::acme {

// One managed certificate, immutable once published.
struct ManagedCertificate {
  std::string name;
  std::string chain_pem;
  std::string key_pem;
  ChainInfo info;
};

using CertificateMap = std::map<std::string, std::shared_ptr<const ManagedCertificate>>;

// The proxy's only input from the ACME side: a versioned, immutable map of managed
// certificates. The ACME thread publishes; the proxy's main thread takes snapshots when told
// something changed and builds its TLS contexts from them. The ACME side never touches
// connections.
class CertStore {
 public:
  // Called (on the publishing thread) after each publish; the proxy posts itself a rebuild.
  void set_listener(std::function<void()> listener);

  // Adds or replaces the certificate for |cert->name|. ACME thread.
  void publish(std::shared_ptr<const ManagedCertificate> cert);

  // The current certificates and their version (1 after the first publish). Any thread.
  std::shared_ptr<const CertificateMap> snapshot() const;
  uint64_t version() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const CertificateMap> certs_ = std::make_shared<const CertificateMap>();
  uint64_t version_ = 0;
  std::function<void()> listener_;
};

}  // namespace fd::acme
