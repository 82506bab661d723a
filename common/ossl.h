#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace fd::ossl {

// RAII owners for the libcrypto objects the project passes around. libssl types (SSL, SSL_CTX)
// stay inside proxy/tls_context.* and proxy/tls_transport.*.
struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioDeleter {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// Drains this thread's OpenSSL error queue into one readable string ("" when empty). Call it
// right after a failed OpenSSL call so a stale error never leaks into a later, unrelated check.
std::string errors();

}  // namespace fd::ossl
