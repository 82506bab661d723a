#pragma once

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/ossl.h"
#include "common/result.h"

namespace fd::acme {

// base64url without padding (RFC 7515 section 2), over OpenSSL's base64.
std::string base64url(std::string_view bytes);
Result<std::string> base64url_decode(std::string_view text);

// An ECDSA P-256 key: the ACME account key, or a certificate key.
class EcKey {
 public:
  static Result<EcKey> generate();
  // Reads a PEM private key (PKCS#8 or SEC1); it must be P-256.
  static Result<EcKey> from_pem(std::string_view pem);
  // PKCS#8 PEM of the private key.
  std::string to_pem() const;
  EVP_PKEY* get() const { return key_.get(); }
  // The public JWK {"crv":"P-256","kty":"EC","x":...,"y":...} (RFC 7518 6.2.1).
  nlohmann::json jwk() const;
  // RFC 7638 thumbprint: base64url(SHA-256 of the JWK's required members, sorted, no spaces).
  std::string thumbprint() const;

 private:
  explicit EcKey(ossl::PkeyPtr key) : key_(std::move(key)) {}
  ossl::PkeyPtr key_;
};

// A flattened JSON JWS (RFC 8555 6.2) signed with ES256 (signature as raw R||S, 64 bytes).
// Protected header: alg, nonce, url, and kid when |kid| is non-empty, else jwk. |payload| is
// the exact payload text: "" for POST-as-GET, "{}" to trigger a challenge.
Result<std::string> sign_jws(const EcKey& key, const std::string& kid, const std::string& nonce,
                             const std::string& url, const std::string& payload);

// External Account Binding (RFC 8555 7.3.4): an HS256 JWS over the account JWK with protected
// {alg: HS256, kid: |eab_kid|, url: |url|}; |hmac_key_b64url| is the CA's base64url key.
Result<nlohmann::json> eab_jws(const std::string& eab_kid, std::string_view hmac_key_b64url,
                               const EcKey& account, const std::string& url);

// token "." thumbprint (RFC 8555 8.1).
std::string key_authorization(const std::string& token, const EcKey& account);

// DER CSR for |names| (SAN dNSName entries, CN = first name) signed by |key| (SHA-256).
Result<std::string> make_csr_der(const EcKey& key, const std::vector<std::string>& names);

// RFC 8737 tls-alpn-01 answer for |name|: a self-signed certificate with SAN dNSName |name| and
// the critical acmeIdentifier extension (1.3.6.1.5.5.7.1.31) holding the DER OCTET STRING of
// SHA-256(|key_authorization|), with a fresh P-256 key.
struct ChallengeCertificate {
  std::string cert_pem;
  std::string key_pem;
};
Result<ChallengeCertificate> make_tls_alpn_certificate(const std::string& name,
                                                       const std::string& key_authorization);

// What a PEM chain holds, after checking it: the leaf's key matches |key_pem|, each
// certificate is signed by the next one in the chain, and the leaf is currently valid.
struct ChainInfo {
  std::vector<std::string> names;  // leaf DNS SANs
  std::string issuer;              // leaf issuer, RFC 2253
  std::string serial_hex;          // leaf serial, lowercase hex
  std::time_t not_before = 0;
  std::time_t not_after = 0;
};
Result<ChainInfo> inspect_chain(std::string_view chain_pem, std::string_view key_pem,
                                std::time_t now);

}  // namespace fd::acme
