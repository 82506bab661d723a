#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "common/ossl.h"

// libcrypto helpers for ACME tests. They deliberately take other OpenSSL paths than
// acme/crypto.cc (BIO base64 filter, config-string extensions, HMAC()) so a test checks the
// code under test against an independent computation instead of against itself.
namespace fd::acme::test {

// A key and the certificate issued for it.
struct Issued {
  ossl::PkeyPtr key;
  ossl::X509Ptr cert;
};

// A CA certificate (basicConstraints CA:TRUE) with subject O=frontdoor tests, CN=|common_name|
// and a fresh P-256 key, valid from an hour ago for ten years. Self-signed when |issuer| is
// null, else signed by it.
Issued make_test_ca(const std::string& common_name, const Issued* issuer = nullptr);

// A leaf for |names| (SAN dNSNames, CN = first name when given) with a fresh P-256 key, signed
// by |issuer|, with serial |serial_hex| and the given validity. A name holding ':' is taken as
// an OpenSSL SAN entry as is ("IP:192.0.2.1", "email:a@b.example").
Issued make_test_leaf(const Issued& issuer, const std::vector<std::string>& names,
                      const std::string& serial_hex, std::time_t not_before, std::time_t not_after);

std::string pem_of(X509* cert);
// PKCS#8 PEM of a private key.
std::string pem_of(EVP_PKEY* key);

// base64url through a BIO base64 filter; decode returns "" on invalid input or padding.
std::string encode_b64url(std::string_view bytes);
std::string decode_b64url(std::string_view text);

std::string sha256_bytes(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);

// Verifies a JWS ES256 signature (raw R||S, 64 bytes) of |input| with |key|, by rebuilding
// the DER ECDSA-Sig-Value and calling EVP_DigestVerify.
bool verify_es256(EVP_PKEY* key, std::string_view input, std::string_view raw_signature);

// DNS names in the subjectAltName of |cert|, in order.
std::vector<std::string> san_dns_names(X509* cert);

// The first CN of |name| ("" when none).
std::string common_name(const X509_NAME* name);

}  // namespace fd::acme::test
