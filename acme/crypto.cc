#include "acme/crypto.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <climits>
#include <cstddef>
#include <memory>
#include <utility>

namespace fd::acme {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

void openssl_free(void* p) {
  OPENSSL_free(p);
}

struct ExtensionStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
};

using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackDeleter>;
using OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
using ObjectPtr = std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT_free>>;
using CharPtr = std::unique_ptr<char, Deleter<openssl_free>>;
using BytesPtr = std::unique_ptr<unsigned char, Deleter<openssl_free>>;

constexpr size_t P256_COORDINATE_BYTES = 32;
constexpr size_t SHA256_BYTES = 32;
// RFC 5280 ub-common-name: a longer first name goes into the SAN only, as CAs accept.
constexpr size_t MAX_COMMON_NAME = 64;
constexpr size_t MAX_DNS_NAME = 253;
constexpr const char* ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31";  // RFC 8737 section 6.1
// EVP_EncodeBlock/EVP_DecodeBlock take int lengths, so large inputs go through in chunks
// whose sizes keep the 3-byte / 4-character groups aligned.
constexpr size_t ENCODE_CHUNK = 3 * 1024 * 1024;
constexpr size_t DECODE_CHUNK = 4 * 1024 * 1024;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* bytes_of(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}

// An Error carrying what failed plus whatever OpenSSL queued about it.
Error ossl_error(Errc code, std::string what) {
  std::string detail = ossl::errors();
  if (!detail.empty()) {
    what += ": " + detail;
  }
  return make_error(code, std::move(what));
}

Result<ossl::BioPtr> memory_bio(std::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) {
    return make_error(Errc::invalid_argument, "PEM input too large");
  }
  ossl::BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) {
    return ossl_error(Errc::internal, "BIO_new_mem_buf failed");
  }
  return bio;
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  if (size <= 0 || data == nullptr) {
    return {};
  }
  return std::string(data, static_cast<size_t>(size));
}

// Never prompt on a terminal for an encrypted key: refuse it instead.
int no_passphrase(char*, int, int, void*) {
  return -1;
}

Result<ossl::PkeyPtr> read_private_key(std::string_view pem) {
  auto bio = memory_bio(pem);
  if (!bio) {
    return bio.error();
  }
  ossl::PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    return ossl_error(Errc::invalid_argument, "no readable unencrypted PEM private key");
  }
  return key;
}

bool is_p256(EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_is_a(key, "EC") != 1) {
    return false;
  }
  char group[80];
  size_t length = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof group, &length) != 1) {
    ERR_clear_error();
    return false;
  }
  int nid = OBJ_sn2nid(group);
  if (nid == NID_undef) {
    nid = EC_curve_nist2nid(group);
  }
  return nid == NID_X9_62_prime256v1;
}

// Printable ASCII: what nonces, URLs and key ids are; it also keeps json::dump() from ever
// meeting invalid UTF-8 (which would throw).
bool is_printable_ascii(std::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) {
      return false;
    }
  }
  return true;
}

Result<void> check_dns_name(const std::string& name) {
  if (name.empty() || name.size() > MAX_DNS_NAME) {
    return make_error(Errc::invalid_argument, "DNS name must have 1 to 253 characters");
  }
  for (char c : name) {
    if (c <= 0x20 || c > 0x7e) {
      return make_error(Errc::invalid_argument, "DNS name has a space or non-ASCII byte");
    }
  }
  return {};
}

std::string sha256(std::string_view data) {
  std::string digest(SHA256_BYTES, '\0');
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), bytes_of(digest), &length, EVP_sha256(), nullptr) != 1 ||
      length != SHA256_BYTES) {
    ERR_clear_error();
    return {};
  }
  return digest;
}

std::string public_coordinate(EVP_PKEY* key, const char* param) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) {
    ERR_clear_error();
    return {};
  }
  BignumPtr value(raw);
  std::string out(P256_COORDINATE_BYTES, '\0');
  if (BN_bn2binpad(value.get(), bytes_of(out), static_cast<int>(out.size())) !=
      static_cast<int>(out.size())) {
    ERR_clear_error();
    return {};
  }
  return out;
}

struct PublicPoint {
  std::string x;  // base64url of the 32-byte big-endian coordinate
  std::string y;
};

Result<PublicPoint> public_point(EVP_PKEY* key) {
  std::string x = public_coordinate(key, OSSL_PKEY_PARAM_EC_PUB_X);
  std::string y = public_coordinate(key, OSSL_PKEY_PARAM_EC_PUB_Y);
  if (x.empty() || y.empty()) {
    return make_error(Errc::internal, "cannot read the EC public key");
  }
  return PublicPoint{base64url(x), base64url(y)};
}

Result<nlohmann::json> public_jwk(EVP_PKEY* key) {
  auto point = public_point(key);
  if (!point) {
    return point.error();
  }
  nlohmann::json jwk = nlohmann::json::object();
  jwk["crv"] = "P-256";
  jwk["kty"] = "EC";
  jwk["x"] = point->x;
  jwk["y"] = point->y;
  return jwk;
}

// ES256 over |input|, converted from OpenSSL's DER ECDSA-Sig-Value to the JWS form: R and S
// as 32-byte big-endian integers, concatenated (RFC 7518 section 3.4).
Result<std::string> es256_sign(EVP_PKEY* key, std::string_view input) {
  if (!is_p256(key)) {
    return make_error(Errc::invalid_argument, "ES256 needs a P-256 key");
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  size_t der_length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_length, bytes_of(input), input.size()) != 1) {
    return ossl_error(Errc::internal, "ES256 signing failed");
  }
  std::string der(der_length, '\0');
  if (EVP_DigestSign(ctx.get(), bytes_of(der), &der_length, bytes_of(input), input.size()) != 1) {
    return ossl_error(Errc::internal, "ES256 signing failed");
  }
  const unsigned char* cursor = bytes_of(der);
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der_length)));
  if (!sig) {
    return ossl_error(Errc::internal, "cannot parse the ECDSA signature");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string raw(2 * P256_COORDINATE_BYTES, '\0');
  const int half = static_cast<int>(P256_COORDINATE_BYTES);
  if (BN_bn2binpad(r, bytes_of(raw), half) != half ||
      BN_bn2binpad(s, bytes_of(raw) + half, half) != half) {
    return ossl_error(Errc::internal, "ECDSA signature does not fit R||S");
  }
  return raw;
}

Result<GeneralNamesPtr> dns_general_names(const std::vector<std::string>& names) {
  GeneralNamesPtr gens(GENERAL_NAMES_new());
  if (!gens) {
    return ossl_error(Errc::internal, "GENERAL_NAMES_new failed");
  }
  for (const std::string& name : names) {
    if (auto ok = check_dns_name(name); !ok) {
      return Error{ok.error().code, ok.error().message + ": \"" + name + "\""};
    }
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    GENERAL_NAME* gen = GENERAL_NAME_new();
    if (text == nullptr || gen == nullptr ||
        ASN1_STRING_set(text, name.data(), static_cast<int>(name.size())) != 1) {
      ASN1_IA5STRING_free(text);
      GENERAL_NAME_free(gen);
      return ossl_error(Errc::internal, "cannot build a dNSName");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, text);  // |gen| owns |text| from here
    if (sk_GENERAL_NAME_push(gens.get(), gen) <= 0) {
      GENERAL_NAME_free(gen);
      return ossl_error(Errc::internal, "cannot build a dNSName");
    }
  }
  return gens;
}

Result<ExtensionPtr> san_extension(const std::vector<std::string>& names) {
  auto gens = dns_general_names(names);
  if (!gens) {
    return gens.error();
  }
  ExtensionPtr ext(X509V3_EXT_i2d(NID_subject_alt_name, 0, gens->get()));
  if (!ext) {
    return ossl_error(Errc::internal, "cannot encode subjectAltName");
  }
  return ext;
}

// The acmeIdentifier extension: critical, and its extnValue is the DER of
// Authorization ::= OCTET STRING (SIZE (32)), so the digest ends up wrapped twice.
Result<ExtensionPtr> acme_identifier_extension(std::string_view digest) {
  OctetStringPtr inner(ASN1_OCTET_STRING_new());
  if (!inner ||
      ASN1_OCTET_STRING_set(inner.get(), bytes_of(digest), static_cast<int>(digest.size())) != 1) {
    return ossl_error(Errc::internal, "cannot build acmeIdentifier");
  }
  unsigned char* der = nullptr;
  int der_length = i2d_ASN1_OCTET_STRING(inner.get(), &der);
  BytesPtr der_owner(der);
  OctetStringPtr outer(ASN1_OCTET_STRING_new());
  ObjectPtr oid(OBJ_txt2obj(ACME_IDENTIFIER_OID, 1));
  if (der_length <= 0 || !outer || !oid ||
      ASN1_OCTET_STRING_set(outer.get(), der, der_length) != 1) {
    return ossl_error(Errc::internal, "cannot build acmeIdentifier");
  }
  ExtensionPtr ext(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, outer.get()));
  if (!ext) {
    return ossl_error(Errc::internal, "cannot build acmeIdentifier");
  }
  return ext;
}

bool add_common_name(X509_NAME* subject, const std::string& name) {
  return X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
                                    reinterpret_cast<const unsigned char*>(name.data()),
                                    static_cast<int>(name.size()), -1, 0) == 1;
}

// A positive 127-bit random serial (RFC 5280 allows up to 20 octets).
bool set_random_serial(X509* cert) {
  BignumPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_is_zero(serial.get())) {
    return false;
  }
  return BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) != nullptr;
}

Result<std::string> certificate_pem(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return ossl_error(Errc::internal, "cannot write the certificate PEM");
  }
  return bio_contents(bio.get());
}

// Every certificate of a PEM bundle, in order; at least one.
Result<std::vector<ossl::X509Ptr>> read_certificates(std::string_view pem) {
  auto bio = memory_bio(pem);
  if (!bio) {
    return bio.error();
  }
  std::vector<ossl::X509Ptr> certs;
  for (;;) {
    ossl::X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
    if (cert) {
      certs.push_back(std::move(cert));
      continue;
    }
    unsigned long err = ERR_peek_last_error();
    if (!certs.empty() && ERR_GET_LIB(err) == ERR_LIB_PEM &&
        ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
      ERR_clear_error();  // the normal end of the bundle
      return certs;
    }
    return ossl_error(Errc::invalid_argument,
                      certs.empty() ? "no PEM certificate in the chain"
                                    : "malformed certificate " + std::to_string(certs.size()));
  }
}

Result<std::time_t> to_time_t(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return ossl_error(Errc::invalid_argument, "bad certificate validity time");
  }
  namespace chrono = std::chrono;
  chrono::sys_days date = chrono::year{tm.tm_year + 1900} /
                          chrono::month{static_cast<unsigned>(tm.tm_mon + 1)} /
                          chrono::day{static_cast<unsigned>(tm.tm_mday)};
  chrono::sys_seconds at =
      date + chrono::hours{tm.tm_hour} + chrono::minutes{tm.tm_min} + chrono::seconds{tm.tm_sec};
  return static_cast<std::time_t>(at.time_since_epoch().count());
}

Result<std::vector<std::string>> dns_names(X509* cert) {
  int found = 0;
  GeneralNamesPtr gens(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &found, nullptr)));
  std::vector<std::string> names;
  if (!gens) {
    if (found == -1) {  // no subjectAltName at all
      ERR_clear_error();
      return names;
    }
    return ossl_error(Errc::invalid_argument, "unreadable subjectAltName in the leaf");
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(gens.get()); ++i) {
    int type = 0;
    void* value = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens.get(), i), &type);
    if (type == GEN_DNS) {
      auto* text = static_cast<const ASN1_IA5STRING*>(value);
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                         static_cast<size_t>(ASN1_STRING_length(text)));
    }
  }
  return names;
}

Result<std::string> rfc2253(const X509_NAME* name) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) {
    return ossl_error(Errc::internal, "cannot print the issuer name");
  }
  return bio_contents(bio.get());
}

Result<std::string> serial_hex(X509* cert) {
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  CharPtr hex(serial ? BN_bn2hex(serial.get()) : nullptr);
  if (!hex) {
    return ossl_error(Errc::internal, "cannot read the serial number");
  }
  std::string out(hex.get());
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

// The checks inspect_chain() promises: key match, signatures up the chain, current validity.
Result<void> check_chain(const std::vector<ossl::X509Ptr>& certs, EVP_PKEY* key,
                         std::time_t not_before, std::time_t not_after, std::time_t now) {
  X509* leaf = certs.front().get();
  EVP_PKEY* leaf_key = X509_get0_pubkey(leaf);
  if (leaf_key == nullptr || EVP_PKEY_eq(leaf_key, key) != 1) {
    ERR_clear_error();
    return make_error(Errc::invalid_argument, "the private key does not match the leaf");
  }
  for (size_t i = 0; i + 1 < certs.size(); ++i) {
    X509* child = certs[i].get();
    X509* parent = certs[i + 1].get();
    EVP_PKEY* parent_key = X509_get0_pubkey(parent);
    if (X509_NAME_cmp(X509_get_issuer_name(child), X509_get_subject_name(parent)) != 0 ||
        parent_key == nullptr || X509_verify(child, parent_key) != 1) {
      return ossl_error(Errc::invalid_argument, "certificate " + std::to_string(i) +
                                                    " is not signed by certificate " +
                                                    std::to_string(i + 1));
    }
  }
  if (now < not_before) {
    return make_error(Errc::invalid_argument, "the leaf is not valid yet");
  }
  if (now > not_after) {
    return make_error(Errc::invalid_argument, "the leaf has expired");
  }
  return {};
}

}  // namespace

std::string base64url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t offset = 0; offset < bytes.size(); offset += ENCODE_CHUNK) {
    std::string_view chunk = bytes.substr(offset, ENCODE_CHUNK);
    size_t start = out.size();
    out.resize(start + (chunk.size() + 2) / 3 * 4 + 1);  // EVP_EncodeBlock adds a NUL
    int written =
        EVP_EncodeBlock(bytes_of(out) + start, bytes_of(chunk), static_cast<int>(chunk.size()));
    out.resize(start + static_cast<size_t>(written));
  }
  while (!out.empty() && out.back() == '=') {
    out.pop_back();
  }
  for (char& c : out) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    }
  }
  return out;
}

Result<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) {
    return make_error(Errc::invalid_argument, "base64url text has an impossible length");
  }
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      return make_error(Errc::invalid_argument, "invalid base64url character");
    }
  }
  const size_t padding = (4 - text.size() % 4) % 4;
  standard.append(padding, '=');
  std::string out;
  out.reserve(standard.size() / 4 * 3);
  for (size_t offset = 0; offset < standard.size(); offset += DECODE_CHUNK) {
    std::string_view chunk = std::string_view(standard).substr(offset, DECODE_CHUNK);
    size_t start = out.size();
    out.resize(start + chunk.size() / 4 * 3);
    int written =
        EVP_DecodeBlock(bytes_of(out) + start, bytes_of(chunk), static_cast<int>(chunk.size()));
    if (written < 0) {
      ERR_clear_error();
      return make_error(Errc::invalid_argument, "invalid base64url text");
    }
  }
  out.resize(out.size() - padding);  // EVP_DecodeBlock counts padding as zero bytes
  // Set bits in the unused low end of the last character would let two texts decode to the
  // same bytes; accept only the canonical encoding.
  if (base64url(out) != text) {
    return make_error(Errc::invalid_argument, "non-canonical base64url text");
  }
  return out;
}

Result<EcKey> EcKey::generate() {
  ERR_clear_error();
  ossl::PkeyPtr key(EVP_EC_gen(SN_X9_62_prime256v1));
  if (!key) {
    return ossl_error(Errc::internal, "P-256 key generation failed");
  }
  return EcKey(std::move(key));
}

Result<EcKey> EcKey::from_pem(std::string_view pem) {
  ERR_clear_error();
  auto key = read_private_key(pem);
  if (!key) {
    return key.error();
  }
  if (!is_p256(key->get())) {
    return make_error(Errc::invalid_argument, "the private key is not an EC P-256 key");
  }
  if (!public_point(key->get())) {
    return make_error(Errc::invalid_argument, "the EC key has no usable public point");
  }
  return EcKey(std::move(*key));
}

std::string EcKey::to_pem() const {
  ERR_clear_error();
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                            nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return bio_contents(bio.get());
}

nlohmann::json EcKey::jwk() const {
  auto jwk = public_jwk(key_.get());
  return jwk ? std::move(*jwk) : nlohmann::json();
}

std::string EcKey::thumbprint() const {
  auto point = public_point(key_.get());
  if (!point) {
    return {};
  }
  // RFC 7638 section 3.2: the required members only, in lexicographic order, no whitespace.
  std::string canonical =
      R"({"crv":"P-256","kty":"EC","x":")" + point->x + R"(","y":")" + point->y + R"("})";
  std::string digest = sha256(canonical);
  return digest.empty() ? std::string() : base64url(digest);
}

Result<std::string> sign_jws(const EcKey& key, const std::string& kid, const std::string& nonce,
                             const std::string& url, const std::string& payload) {
  ERR_clear_error();
  if (nonce.empty() || url.empty()) {
    return make_error(Errc::invalid_argument, "a JWS needs a nonce and a URL");
  }
  if (!is_printable_ascii(nonce) || !is_printable_ascii(url) || !is_printable_ascii(kid)) {
    return make_error(Errc::invalid_argument, "JWS nonce, URL and kid must be printable ASCII");
  }
  nlohmann::json header = nlohmann::json::object();
  header["alg"] = "ES256";
  header["nonce"] = nonce;
  header["url"] = url;
  if (kid.empty()) {
    auto jwk = public_jwk(key.get());
    if (!jwk) {
      return jwk.error();
    }
    header["jwk"] = std::move(*jwk);
  } else {
    header["kid"] = kid;
  }
  std::string protected64 = base64url(header.dump());
  std::string payload64 = base64url(payload);
  auto signature = es256_sign(key.get(), protected64 + "." + payload64);
  if (!signature) {
    return signature.error();
  }
  nlohmann::json jws = nlohmann::json::object();
  jws["protected"] = std::move(protected64);
  jws["payload"] = std::move(payload64);
  jws["signature"] = base64url(*signature);
  return jws.dump();
}

Result<nlohmann::json> eab_jws(const std::string& eab_kid, std::string_view hmac_key_b64url,
                               const EcKey& account, const std::string& url) {
  ERR_clear_error();
  if (eab_kid.empty() || url.empty() || !is_printable_ascii(eab_kid) || !is_printable_ascii(url)) {
    return make_error(Errc::invalid_argument, "EAB needs a printable ASCII key id and URL");
  }
  auto hmac_key = base64url_decode(hmac_key_b64url);
  if (!hmac_key) {
    return make_error(Errc::invalid_argument, "EAB HMAC key: " + hmac_key.error().message);
  }
  if (hmac_key->empty()) {
    return make_error(Errc::invalid_argument, "EAB HMAC key is empty");
  }
  auto jwk = public_jwk(account.get());
  if (!jwk) {
    return jwk.error();
  }
  nlohmann::json header = nlohmann::json::object();
  header["alg"] = "HS256";
  header["kid"] = eab_kid;
  header["url"] = url;
  std::string protected64 = base64url(header.dump());
  std::string payload64 = base64url(jwk->dump());
  std::string input = protected64 + "." + payload64;
  std::string mac(EVP_MAX_MD_SIZE, '\0');
  size_t mac_length = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, hmac_key->data(), hmac_key->size(),
                bytes_of(input), input.size(), bytes_of(mac), mac.size(), &mac_length) == nullptr) {
    return ossl_error(Errc::internal, "HMAC-SHA256 failed");
  }
  mac.resize(mac_length);
  nlohmann::json jws = nlohmann::json::object();
  jws["protected"] = std::move(protected64);
  jws["payload"] = std::move(payload64);
  jws["signature"] = base64url(mac);
  return jws;
}

std::string key_authorization(const std::string& token, const EcKey& account) {
  return token + "." + account.thumbprint();
}

Result<std::string> make_csr_der(const EcKey& key, const std::vector<std::string>& names) {
  ERR_clear_error();
  if (names.empty()) {
    return make_error(Errc::invalid_argument, "a CSR needs at least one name");
  }
  auto san = san_extension(names);
  if (!san) {
    return san.error();
  }
  ReqPtr req(X509_REQ_new());
  ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
  if (!req || !exts || X509_REQ_set_version(req.get(), 0) != 1 ||
      (names.front().size() <= MAX_COMMON_NAME &&
       !add_common_name(X509_REQ_get_subject_name(req.get()), names.front())) ||
      sk_X509_EXTENSION_push(exts.get(), san->get()) <= 0) {
    return ossl_error(Errc::internal, "cannot build the CSR");
  }
  san->release();  // |exts| owns it now
  if (X509_REQ_add_extensions(req.get(), exts.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return ossl_error(Errc::internal, "cannot sign the CSR");
  }
  int length = i2d_X509_REQ(req.get(), nullptr);
  if (length <= 0) {
    return ossl_error(Errc::internal, "cannot encode the CSR");
  }
  std::string der(static_cast<size_t>(length), '\0');
  unsigned char* cursor = bytes_of(der);
  if (i2d_X509_REQ(req.get(), &cursor) != length) {
    return ossl_error(Errc::internal, "cannot encode the CSR");
  }
  return der;
}

Result<ChallengeCertificate> make_tls_alpn_certificate(const std::string& name,
                                                       const std::string& key_authorization) {
  ERR_clear_error();
  if (auto ok = check_dns_name(name); !ok) {
    return ok.error();
  }
  if (key_authorization.empty()) {
    return make_error(Errc::invalid_argument, "empty key authorization");
  }
  auto key = EcKey::generate();
  if (!key) {
    return key.error();
  }
  std::string digest = sha256(key_authorization);
  if (digest.empty()) {
    return ossl_error(Errc::internal, "SHA-256 failed");
  }
  auto san = san_extension({name});
  if (!san) {
    return san.error();
  }
  auto acme_id = acme_identifier_extension(digest);
  if (!acme_id) {
    return acme_id.error();
  }
  ossl::X509Ptr cert(X509_new());
  // Valid from an hour ago for a week: validators with a skewed clock still accept it.
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      !set_random_serial(cert.get()) ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600) == nullptr ||
      !add_common_name(X509_get_subject_name(cert.get()), "ACME challenge") ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1 ||
      X509_add_ext(cert.get(), san->get(), -1) != 1 ||
      X509_add_ext(cert.get(), acme_id->get(), -1) != 1 ||
      X509_sign(cert.get(), key->get(), EVP_sha256()) <= 0) {
    return ossl_error(Errc::internal, "cannot build the tls-alpn-01 certificate");
  }
  auto cert_pem = certificate_pem(cert.get());
  if (!cert_pem) {
    return cert_pem.error();
  }
  std::string key_pem = key->to_pem();
  if (key_pem.empty()) {
    return make_error(Errc::internal, "cannot write the tls-alpn-01 key PEM");
  }
  return ChallengeCertificate{std::move(*cert_pem), std::move(key_pem)};
}

Result<ChainInfo> inspect_chain(std::string_view chain_pem, std::string_view key_pem,
                                std::time_t now) {
  ERR_clear_error();
  auto certs = read_certificates(chain_pem);
  if (!certs) {
    return certs.error();
  }
  auto key = read_private_key(key_pem);
  if (!key) {
    return key.error();
  }
  X509* leaf = certs->front().get();
  ChainInfo info;
  auto not_before = to_time_t(X509_get0_notBefore(leaf));
  auto not_after = to_time_t(X509_get0_notAfter(leaf));
  if (!not_before || !not_after) {
    return !not_before ? not_before.error() : not_after.error();
  }
  if (auto ok = check_chain(*certs, key->get(), *not_before, *not_after, now); !ok) {
    return ok.error();
  }
  auto names = dns_names(leaf);
  auto issuer = rfc2253(X509_get_issuer_name(leaf));
  auto serial = serial_hex(leaf);
  if (!names || !issuer || !serial) {
    return !names ? names.error() : !issuer ? issuer.error() : serial.error();
  }
  info.names = std::move(*names);
  info.issuer = std::move(*issuer);
  info.serial_hex = std::move(*serial);
  info.not_before = *not_before;
  info.not_after = *not_after;
  return info;
}

}  // namespace fd::acme
