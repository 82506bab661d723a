#pragma once

#include <string>

#include "common/ossl.h"

namespace fd::config::test {

// A fresh directory under the system temp dir, removed with its contents when this dies. Test
// keys and certificates are written here at run time so no key file is ever committed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // Writes |content| to |name| inside the directory and returns the full path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// A new P-256 private key.
fd::ossl::PkeyPtr make_key();

// A self-signed certificate for CN=|common_name| over |key|, valid for a day.
fd::ossl::X509Ptr make_certificate(EVP_PKEY* key, const std::string& common_name);

std::string to_pem(X509* cert);
std::string to_pem(EVP_PKEY* key);

// |key| as PKCS#8 PEM encrypted with |passphrase|.
std::string to_encrypted_pem(EVP_PKEY* key, const std::string& passphrase);

}  // namespace fd::config::test
