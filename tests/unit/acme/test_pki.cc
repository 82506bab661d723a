#include "tests/unit/acme/test_pki.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <memory>

namespace fd::acme::test {
namespace {

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  ASSERT_NE(ext, nullptr) << value;
  EXPECT_EQ(X509_add_ext(cert, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

void set_name(X509_NAME* name, const std::string& organization, const std::string& cn) {
  if (!organization.empty()) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(organization.c_str()), -1, -1,
                               0);
  }
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  }
}

}  // namespace

Issued make_test_ca(const std::string& common_name, const Issued* issuer) {
  Issued ca{ossl::PkeyPtr(EVP_EC_gen("P-256")), ossl::X509Ptr(X509_new())};
  X509* cert = ca.cert.get();
  X509_set_version(cert, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1000);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600);
  set_name(X509_get_subject_name(cert), "frontdoor tests", common_name);
  X509* signer_cert = issuer != nullptr ? issuer->cert.get() : cert;
  EVP_PKEY* signer_key = issuer != nullptr ? issuer->key.get() : ca.key.get();
  X509_set_issuer_name(cert, X509_get_subject_name(signer_cert));
  X509_set_pubkey(cert, ca.key.get());
  add_extension(cert, signer_cert, NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert, signer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  EXPECT_GT(X509_sign(cert, signer_key, EVP_sha256()), 0);
  return ca;
}

Issued make_test_leaf(const Issued& issuer, const std::vector<std::string>& names,
                      const std::string& serial_hex, std::time_t not_before,
                      std::time_t not_after) {
  Issued leaf{ossl::PkeyPtr(EVP_EC_gen("P-256")), ossl::X509Ptr(X509_new())};
  X509* cert = leaf.cert.get();
  X509_set_version(cert, X509_VERSION_3);
  BIGNUM* serial = nullptr;
  EXPECT_GT(BN_hex2bn(&serial, serial_hex.c_str()), 0);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert));
  BN_free(serial);
  ASN1_TIME_set(X509_getm_notBefore(cert), not_before);
  ASN1_TIME_set(X509_getm_notAfter(cert), not_after);
  set_name(X509_get_subject_name(cert), "", names.empty() ? "" : names.front());
  X509_set_issuer_name(cert, X509_get_subject_name(issuer.cert.get()));
  X509_set_pubkey(cert, leaf.key.get());
  if (!names.empty()) {
    std::string san;
    for (const std::string& name : names) {
      san +=
          (san.empty() ? "" : ",") + (name.find(':') == std::string::npos ? "DNS:" + name : name);
    }
    add_extension(cert, issuer.cert.get(), NID_subject_alt_name, san);
  }
  EXPECT_GT(X509_sign(cert, issuer.key.get(), EVP_sha256()), 0);
  return leaf;
}

std::string pem_of(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_X509(bio.get(), cert), 1);
  return bio_contents(bio.get());
}

std::string pem_of(EVP_PKEY* key) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  return bio_contents(bio.get());
}

std::string encode_b64url(std::string_view bytes) {
  ossl::BioPtr b64(BIO_new(BIO_f_base64()));
  BIO_set_flags(b64.get(), BIO_FLAGS_BASE64_NO_NL);
  BIO* sink = BIO_new(BIO_s_mem());
  BIO_push(b64.get(), sink);
  if (!bytes.empty()) {
    EXPECT_EQ(BIO_write(b64.get(), bytes.data(), static_cast<int>(bytes.size())),
              static_cast<int>(bytes.size()));
  }
  EXPECT_EQ(BIO_flush(b64.get()), 1);
  std::string out = bio_contents(sink);
  while (!out.empty() && (out.back() == '=' || out.back() == '\n')) {
    out.pop_back();
  }
  for (char& c : out) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return out;
}

std::string decode_b64url(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  standard.append((4 - standard.size() % 4) % 4, '=');
  ossl::BioPtr b64(BIO_new(BIO_f_base64()));
  BIO_set_flags(b64.get(), BIO_FLAGS_BASE64_NO_NL);
  BIO_push(b64.get(), BIO_new_mem_buf(standard.data(), static_cast<int>(standard.size())));
  std::string out;
  char buf[512];
  int n;
  while ((n = BIO_read(b64.get(), buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  // The BIO filter skips what it cannot read, so insist on an exact round trip.
  if (encode_b64url(out) != text) {
    ADD_FAILURE() << "not canonical unpadded base64url: " << text;
    return {};
  }
  return out;
}

std::string sha256_bytes(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr), 1);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EXPECT_NE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                 reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &length),
            nullptr);
  return std::string(reinterpret_cast<const char*>(mac), length);
}

bool verify_es256(EVP_PKEY* key, std::string_view input, std::string_view raw_signature) {
  if (raw_signature.size() != 64) {
    return false;
  }
  const auto* raw = reinterpret_cast<const unsigned char*>(raw_signature.data());
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw + 32, 32, nullptr);
  if (ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return false;
  }
  unsigned char* der = nullptr;
  int der_length = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      der_length > 0 && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(ctx, der, static_cast<size_t>(der_length),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

std::vector<std::string> san_dns_names(X509* cert) {
  std::vector<std::string> names;
  auto* gens =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; gens != nullptr && i < sk_GENERAL_NAME_num(gens); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(gens, i);
    if (gen->type == GEN_DNS) {
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gen->d.dNSName)),
                         static_cast<size_t>(ASN1_STRING_length(gen->d.dNSName)));
    }
  }
  GENERAL_NAMES_free(gens);
  return names;
}

std::string common_name(const X509_NAME* name) {
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) {
    return {};
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

}  // namespace fd::acme::test
