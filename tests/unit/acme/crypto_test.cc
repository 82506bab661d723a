#include "acme/crypto.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <random>
#include <set>

#include "tests/unit/acme/test_pki.h"

namespace fd::acme {
namespace {

using test::decode_b64url;

// RFC 7515 appendix A.3: the ES256 example key (d, x, y), its JWS and signature.
constexpr const char* RFC7515_A3_X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
constexpr const char* RFC7515_A3_Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
constexpr const char* RFC7515_A3_PROTECTED = "eyJhbGciOiJFUzI1NiJ9";
constexpr const char* RFC7515_PAYLOAD =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
    "fQ";
constexpr const char* RFC7515_A3_SIGNATURE =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
// RFC 7515 appendix A.1: the HS256 example key, header and MAC.
constexpr const char* RFC7515_A1_KEY =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
constexpr const char* RFC7515_A1_PROTECTED = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
constexpr const char* RFC7515_A1_MAC = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

// The A.3 private scalar d as PKCS#8 without the public point, and as SEC1 with it. Built with
// `openssl pkey` / `openssl ec` from a hand-made SEC1 DER of d.
constexpr const char* RFC7515_A3_PKCS8 = R"(-----BEGIN PRIVATE KEY-----
MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCCOmxCecZCYv5gEh98f
XXfpyylgbr7SJjtfV8IT34T0sg==
-----END PRIVATE KEY-----
)";
constexpr const char* RFC7515_A3_SEC1 = R"(-----BEGIN EC PRIVATE KEY-----
MHcCAQEEII6bEJ5xkJi/mASH3x9dd+nLKWBuvtImO19XwhPfhPSyoAoGCCqGSM49
AwEHoUQDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEXH8UTNG72b
focs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==
-----END EC PRIVATE KEY-----
)";
// RFC 7638 thumbprint of the A.3 key, computed outside this code base:
//   printf '%s' '{"crv":"P-256","kty":"EC","x":"f83O…VEU","y":"x_FE…I5a0"}' |
//   openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '='
// (and the same with Python's hashlib + base64.urlsafe_b64encode).
constexpr const char* RFC7515_A3_THUMBPRINT = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U";

constexpr const char* ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31";

EcKey rfc_key() {
  auto key = EcKey::from_pem(RFC7515_A3_PKCS8);
  EXPECT_TRUE(key) << key.error().message;
  return std::move(key.value());
}

EcKey fresh_key() {
  auto key = EcKey::generate();
  EXPECT_TRUE(key) << key.error().message;
  return std::move(key.value());
}

std::string as_bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) {
    out.push_back(static_cast<char>(v));
  }
  return out;
}

std::set<std::string> keys_of(const nlohmann::json& object) {
  std::set<std::string> keys;
  for (const auto& item : object.items()) {
    keys.insert(item.key());
  }
  return keys;
}

// ----------------------------------------------------------------------------- base64url

TEST(Base64UrlTest, EmptyIsEmpty) {
  EXPECT_EQ(base64url(""), "");
  auto decoded = base64url_decode("");
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, "");
}

TEST(Base64UrlTest, Rfc7515AppendixC) {
  const std::string octets = as_bytes({3, 236, 255, 224, 193});
  EXPECT_EQ(base64url(octets), "A-z_4ME");
  auto decoded = base64url_decode("A-z_4ME");
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, octets);
}

TEST(Base64UrlTest, Rfc4648VectorsWithoutPadding) {
  const std::pair<const char*, const char*> vectors[] = {
      {"f", "Zg"},        {"fo", "Zm8"},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64url(plain), encoded);
    auto decoded = base64url_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(Base64UrlTest, UsesTheUrlSafeAlphabet) {
  // 0xfb 0xff 0xbf is 111110 111111 111110 111111: "+/+/" in standard base64.
  EXPECT_EQ(base64url(as_bytes({0xfb, 0xff, 0xbf})), "-_-_");
  EXPECT_EQ(base64url(as_bytes({0xff})), "_w");
  EXPECT_EQ(base64url(as_bytes({0xfb, 0xf0})), "-_A");
}

TEST(Base64UrlTest, Rfc7515AppendixA1Values) {
  auto payload = base64url_decode(RFC7515_PAYLOAD);
  ASSERT_TRUE(payload);
  EXPECT_EQ(*payload,
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");
  EXPECT_EQ(base64url(*payload), RFC7515_PAYLOAD);
  auto header = base64url_decode(RFC7515_A1_PROTECTED);
  ASSERT_TRUE(header);
  EXPECT_EQ(*header, "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}");
  auto key = base64url_decode(RFC7515_A1_KEY);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->size(), 64u);
}

TEST(Base64UrlTest, RoundTripsEveryLengthAndByte) {
  std::mt19937 rng(7515);
  for (size_t length = 0; length <= 300; ++length) {
    std::string bytes(length, '\0');
    for (size_t i = 0; i < length; ++i) {
      bytes[i] = static_cast<char>(length <= 256 && i == 0 ? length - 1 : rng() & 0xff);
    }
    std::string encoded = base64url(bytes);
    EXPECT_EQ(encoded.size(), (length * 4 + 2) / 3) << length;
    EXPECT_EQ(encoded.find_first_of("+/=\n"), std::string::npos) << encoded;
    EXPECT_EQ(encoded, test::encode_b64url(bytes));
    auto decoded = base64url_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, bytes);
  }
}

TEST(Base64UrlTest, RoundTripsLargeInput) {
  // Larger than the encoder's and decoder's internal chunks.
  std::string bytes(7 * 1024 * 1024 + 1, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>((i * 131) >> 3);
  }
  std::string encoded = base64url(bytes);
  EXPECT_EQ(encoded.size(), (bytes.size() * 4 + 2) / 3);
  auto decoded = base64url_decode(encoded);
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(*decoded == bytes);
}

TEST(Base64UrlTest, RejectsInvalidInput) {
  const std::string invalid[] = {
      "Zg==",         // padding
      "Zg=",          // padding
      "Zm9v=",        // padding
      "Zm9v+w",       // standard alphabet
      "Zm9v/w",       // standard alphabet
      "Z",            // impossible length
      "Zm9vY",        // impossible length
      "Zm 9v",        // space
      "Zm9v\n",       // newline
      "Zh",           // non-canonical: the unused low bits are set
      "Zm9",          // idem
      "Zm\xc3\xa9v",  // non-ASCII
      std::string("Zm\0v", 4),
      "Zm9v.Zm9v",  // a JWS, not one segment
  };
  for (const std::string& text : invalid) {
    auto decoded = base64url_decode(text);
    EXPECT_FALSE(decoded) << "accepted \"" << text << "\"";
    if (!decoded) {
      EXPECT_EQ(decoded.error().code, Errc::invalid_argument);
    }
  }
}

// ----------------------------------------------------------------------------- EcKey

TEST(EcKeyTest, GeneratesP256) {
  EcKey key = fresh_key();
  ASSERT_NE(key.get(), nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
  char group[64];
  size_t length = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key.get(), group, sizeof group, &length), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_NE(fresh_key().thumbprint(), key.thumbprint());
}

TEST(EcKeyTest, PemRoundTrip) {
  EcKey key = fresh_key();
  std::string pem = key.to_pem();
  EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << pem;
  auto again = EcKey::from_pem(pem);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(EVP_PKEY_eq(key.get(), again->get()), 1);
  EXPECT_EQ(again->to_pem(), pem);
  EXPECT_EQ(again->jwk(), key.jwk());
  EXPECT_EQ(again->thumbprint(), key.thumbprint());
}

TEST(EcKeyTest, ReadsRfc7515KeyAsPkcs8AndSec1) {
  for (const char* pem : {RFC7515_A3_PKCS8, RFC7515_A3_SEC1}) {
    auto key = EcKey::from_pem(pem);
    ASSERT_TRUE(key) << key.error().message;
    nlohmann::json jwk = key->jwk();
    EXPECT_EQ(jwk["x"], RFC7515_A3_X);
    EXPECT_EQ(jwk["y"], RFC7515_A3_Y);
    EXPECT_EQ(key->thumbprint(), RFC7515_A3_THUMBPRINT);
    // to_pem() always writes PKCS#8.
    EXPECT_EQ(key->to_pem().rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
  }
}

TEST(EcKeyTest, FromPemRejectsOtherKeysAndGarbage) {
  ossl::PkeyPtr rsa(EVP_RSA_gen(2048));
  ossl::PkeyPtr p384(EVP_EC_gen("P-384"));
  ossl::PkeyPtr ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_TRUE(rsa && p384 && ed25519);
  EcKey ec = fresh_key();
  test::Issued ca = test::make_test_ca("Test Root");

  ossl::BioPtr encrypted(BIO_new(BIO_s_mem()));
  char passphrase[] = "secret";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(encrypted.get(), ec.get(), EVP_aes_256_cbc(), passphrase,
                                          6, nullptr, nullptr),
            1);
  char* encrypted_data = nullptr;
  long encrypted_size = BIO_get_mem_data(encrypted.get(), &encrypted_data);
  ossl::BioPtr pub(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PUBKEY(pub.get(), ec.get()), 1);
  char* pub_data = nullptr;
  long pub_size = BIO_get_mem_data(pub.get(), &pub_data);

  const std::pair<const char*, std::string> cases[] = {
      {"rsa", test::pem_of(rsa.get())},
      {"p384", test::pem_of(p384.get())},
      {"ed25519", test::pem_of(ed25519.get())},
      {"encrypted", std::string(encrypted_data, static_cast<size_t>(encrypted_size))},
      {"public key", std::string(pub_data, static_cast<size_t>(pub_size))},
      {"certificate", test::pem_of(ca.cert.get())},
      {"empty", ""},
      {"garbage", "not a key\n"},
      {"broken base64", "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"},
  };
  for (const auto& [label, pem] : cases) {
    auto key = EcKey::from_pem(pem);
    EXPECT_FALSE(key) << label;
    if (!key) {
      EXPECT_EQ(key.error().code, Errc::invalid_argument) << label;
      EXPECT_FALSE(key.error().message.empty());
    }
  }
}

TEST(EcKeyTest, JwkHasExactlyTheEcMembers) {
  EcKey key = fresh_key();
  nlohmann::json jwk = key.jwk();
  ASSERT_TRUE(jwk.is_object());
  EXPECT_EQ(keys_of(jwk), (std::set<std::string>{"crv", "kty", "x", "y"}));
  EXPECT_EQ(jwk["crv"], "P-256");
  EXPECT_EQ(jwk["kty"], "EC");
  ASSERT_TRUE(jwk["x"].is_string());
  ASSERT_TRUE(jwk["y"].is_string());
  const std::string x64 = jwk["x"];
  const std::string y64 = jwk["y"];
  EXPECT_EQ(x64.size(), 43u);
  EXPECT_EQ(y64.size(), 43u);
  // x || y must be the uncompressed point OpenSSL reports, 0x04 || X || Y.
  unsigned char point[65];
  size_t length = 0;
  ASSERT_EQ(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                            sizeof point, &length),
            1);
  ASSERT_EQ(length, 65u);
  EXPECT_EQ(point[0], 0x04);
  const std::string encoded(reinterpret_cast<const char*>(point), length);
  EXPECT_EQ(decode_b64url(x64), encoded.substr(1, 32));
  EXPECT_EQ(decode_b64url(y64), encoded.substr(33, 32));
}

TEST(EcKeyTest, JwkKeepsLeadingZeroBytes) {
  // 1 key in 128 has a coordinate below 2^248: generate keys until one does (the cap makes a
  // miss a 1e-13 event), and check it still encodes as 32 bytes.
  bool found = false;
  for (int i = 0; i < 4000 && !found; ++i) {
    EcKey key = fresh_key();
    nlohmann::json jwk = key.jwk();
    for (const char* member : {"x", "y"}) {
      std::string coordinate = decode_b64url(jwk[member].get<std::string>());
      ASSERT_EQ(coordinate.size(), 32u);
      found = found || coordinate[0] == '\0';
    }
  }
  EXPECT_TRUE(found) << "no key with a leading zero byte came up";
}

TEST(EcKeyTest, ThumbprintIsRfc7638) {
  EcKey key = fresh_key();
  nlohmann::json jwk = key.jwk();
  const std::string canonical = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" +
                                jwk["x"].get<std::string>() + "\",\"y\":\"" +
                                jwk["y"].get<std::string>() + "\"}";
  const std::string expected = test::encode_b64url(test::sha256_bytes(canonical));
  EXPECT_EQ(key.thumbprint(), expected);
  EXPECT_EQ(key.thumbprint().size(), 43u);
  EXPECT_EQ(key.thumbprint(), key.thumbprint());
  EXPECT_EQ(decode_b64url(key.thumbprint()).size(), 32u);
}

TEST(EcKeyTest, ThumbprintKnownVector) {
  EXPECT_EQ(rfc_key().thumbprint(), RFC7515_A3_THUMBPRINT);
}

// ----------------------------------------------------------------------------- JWS

struct ParsedJws {
  nlohmann::json body;
  nlohmann::json header;
  std::string protected64;
  std::string payload64;
  std::string payload;
  std::string signature;
};

ParsedJws parse_jws(const std::string& text) {
  ParsedJws jws;
  jws.body = nlohmann::json::parse(text);
  EXPECT_EQ(keys_of(jws.body), (std::set<std::string>{"payload", "protected", "signature"}));
  jws.protected64 = jws.body["protected"].get<std::string>();
  jws.payload64 = jws.body["payload"].get<std::string>();
  jws.header = nlohmann::json::parse(decode_b64url(jws.protected64));
  jws.payload = decode_b64url(jws.payload64);
  jws.signature = decode_b64url(jws.body["signature"].get<std::string>());
  return jws;
}

TEST(JwsTest, TestVerifierAcceptsRfc7515AppendixA3) {
  // Checks the R||S -> DER verifier of this test against the RFC before trusting it below.
  EcKey key = rfc_key();
  auto signature = base64url_decode(RFC7515_A3_SIGNATURE);
  ASSERT_TRUE(signature);
  const std::string input = std::string(RFC7515_A3_PROTECTED) + "." + RFC7515_PAYLOAD;
  EXPECT_TRUE(test::verify_es256(key.get(), input, *signature));
  EXPECT_FALSE(test::verify_es256(key.get(), input + "x", *signature));
  EXPECT_FALSE(test::verify_es256(fresh_key().get(), input, *signature));
}

TEST(JwsTest, NewAccountCarriesJwk) {
  EcKey key = fresh_key();
  const std::string payload = R"({"termsOfServiceAgreed":true})";
  auto text = sign_jws(key, "", "nonce-1_x", "https://ca.test/acme/new-acct", payload);
  ASSERT_TRUE(text) << text.error().message;
  ParsedJws jws = parse_jws(*text);
  EXPECT_EQ(keys_of(jws.header), (std::set<std::string>{"alg", "jwk", "nonce", "url"}));
  EXPECT_EQ(jws.header["alg"], "ES256");
  EXPECT_EQ(jws.header["nonce"], "nonce-1_x");
  EXPECT_EQ(jws.header["url"], "https://ca.test/acme/new-acct");
  EXPECT_EQ(jws.header["jwk"], key.jwk());
  EXPECT_EQ(jws.payload, payload);
  ASSERT_EQ(jws.signature.size(), 64u);
  EXPECT_TRUE(test::verify_es256(key.get(), jws.protected64 + "." + jws.payload64, jws.signature));
  EXPECT_EQ(text->find('='), std::string::npos);
  EXPECT_EQ(text->find(' '), std::string::npos);
}

TEST(JwsTest, KidReplacesJwk) {
  EcKey key = fresh_key();
  const std::string kid = "https://ca.test/acme/acct/42";
  auto text = sign_jws(key, kid, "abc", "https://ca.test/acme/new-order", "{}");
  ASSERT_TRUE(text) << text.error().message;
  ParsedJws jws = parse_jws(*text);
  EXPECT_EQ(keys_of(jws.header), (std::set<std::string>{"alg", "kid", "nonce", "url"}));
  EXPECT_EQ(jws.header["kid"], kid);
  EXPECT_EQ(jws.header["alg"], "ES256");
  EXPECT_EQ(jws.payload64, "e30");
  EXPECT_TRUE(test::verify_es256(key.get(), jws.protected64 + "." + jws.payload64, jws.signature));
}

TEST(JwsTest, PostAsGetPayloadStaysEmpty) {
  EcKey key = fresh_key();
  auto text = sign_jws(key, "https://ca.test/acct/1", "n", "https://ca.test/order/1", "");
  ASSERT_TRUE(text) << text.error().message;
  ParsedJws jws = parse_jws(*text);
  EXPECT_TRUE(jws.body["payload"].is_string());
  EXPECT_EQ(jws.payload64, "");
  EXPECT_TRUE(test::verify_es256(key.get(), jws.protected64 + ".", jws.signature));
}

TEST(JwsTest, TamperingBreaksTheSignature) {
  EcKey key = fresh_key();
  auto text = sign_jws(key, "https://ca.test/acct/1", "n1", "https://ca.test/chall/1", "{}");
  ASSERT_TRUE(text);
  ParsedJws jws = parse_jws(*text);
  const std::string input = jws.protected64 + "." + jws.payload64;
  ASSERT_TRUE(test::verify_es256(key.get(), input, jws.signature));
  EXPECT_FALSE(
      test::verify_es256(key.get(), jws.protected64 + "." + base64url("{ }"), jws.signature));
  EXPECT_FALSE(test::verify_es256(key.get(), jws.protected64 + ".", jws.signature));
  auto other = sign_jws(key, "https://ca.test/acct/1", "n2", "https://ca.test/chall/1", "{}");
  ASSERT_TRUE(other);
  EXPECT_FALSE(test::verify_es256(key.get(), parse_jws(*other).protected64 + "." + jws.payload64,
                                  jws.signature));
  EXPECT_FALSE(test::verify_es256(fresh_key().get(), input, jws.signature));
}

TEST(JwsTest, EverySignatureIsRawRAndS) {
  // R or S below 2^248 (1 in 256 each) must still be left-padded to 32 bytes: sign until both
  // a short R and a short S came up (a miss within the cap is a 1e-10 event), verifying every
  // signature on the way.
  EcKey key = fresh_key();
  bool short_r = false;
  bool short_s = false;
  for (int i = 0; i < 6000 && !(short_r && short_s); ++i) {
    const std::string payload = "{\"n\":" + std::to_string(i) + "}";
    auto text = sign_jws(key, "https://ca.test/acct/1", "n", "https://ca.test/x", payload);
    ASSERT_TRUE(text);
    ParsedJws jws = parse_jws(*text);
    ASSERT_EQ(jws.signature.size(), 64u);
    ASSERT_TRUE(
        test::verify_es256(key.get(), jws.protected64 + "." + jws.payload64, jws.signature));
    short_r = short_r || jws.signature[0] == '\0';
    short_s = short_s || jws.signature[32] == '\0';
  }
  EXPECT_TRUE(short_r && short_s) << "no short R or S came up";
}

TEST(JwsTest, RejectsMissingOrNonAsciiFields) {
  EcKey key = fresh_key();
  EXPECT_FALSE(sign_jws(key, "", "", "https://ca.test/x", ""));
  EXPECT_FALSE(sign_jws(key, "", "n", "", ""));
  EXPECT_FALSE(sign_jws(key, "", "n\xff", "https://ca.test/x", ""));
  EXPECT_FALSE(sign_jws(key, "https://ca.test/\xc3\xa9", "n", "https://ca.test/x", ""));
  EXPECT_FALSE(sign_jws(key, "", "n", "https://ca.test/x\r\nX: y", ""));
}

TEST(EabTest, Rfc7515AppendixA1CheckOfTheTestHmac) {
  auto key = base64url_decode(RFC7515_A1_KEY);
  ASSERT_TRUE(key);
  const std::string input = std::string(RFC7515_A1_PROTECTED) + "." + RFC7515_PAYLOAD;
  EXPECT_EQ(base64url(test::hmac_sha256(*key, input)), RFC7515_A1_MAC);
}

TEST(EabTest, Hs256OverTheAccountJwk) {
  EcKey account = fresh_key();
  const std::string url = "https://ca.test/acme/new-acct";
  auto eab = eab_jws("kid-123", RFC7515_A1_KEY, account, url);
  ASSERT_TRUE(eab) << eab.error().message;
  EXPECT_EQ(keys_of(*eab), (std::set<std::string>{"payload", "protected", "signature"}));
  ParsedJws jws = parse_jws(eab->dump());
  EXPECT_EQ(jws.header, (nlohmann::json{{"alg", "HS256"}, {"kid", "kid-123"}, {"url", url}}));
  EXPECT_EQ(nlohmann::json::parse(jws.payload), account.jwk());
  EXPECT_EQ(jws.payload, account.jwk().dump());  // compact, like every other payload
  const std::string hmac_key = decode_b64url(RFC7515_A1_KEY);
  ASSERT_EQ(hmac_key.size(), 64u);
  EXPECT_EQ(jws.signature, test::hmac_sha256(hmac_key, jws.protected64 + "." + jws.payload64));
  EXPECT_NE(jws.signature, test::hmac_sha256("wrong key", jws.protected64 + "." + jws.payload64));
}

TEST(EabTest, RejectsBadInput) {
  EcKey account = fresh_key();
  const std::string url = "https://ca.test/acme/new-acct";
  EXPECT_FALSE(eab_jws("kid", "bm90+base64url", account, url));
  EXPECT_FALSE(eab_jws("kid", "c2VjcmV0==", account, url));
  EXPECT_FALSE(eab_jws("kid", "", account, url));
  EXPECT_FALSE(eab_jws("", RFC7515_A1_KEY, account, url));
  EXPECT_FALSE(eab_jws("kid", RFC7515_A1_KEY, account, ""));
}

TEST(KeyAuthorizationTest, TokenDotThumbprint) {
  EXPECT_EQ(key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", rfc_key()),
            std::string("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.") + RFC7515_A3_THUMBPRINT);
  EcKey key = fresh_key();
  EXPECT_EQ(key_authorization("tok", key), "tok." + key.thumbprint());
}

// ----------------------------------------------------------------------------- CSR

struct ReqDeleter {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
using ReqPtr = std::unique_ptr<X509_REQ, ReqDeleter>;

ReqPtr parse_csr(const std::string& der) {
  const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
  ReqPtr req(d2i_X509_REQ(nullptr, &cursor, static_cast<long>(der.size())));
  EXPECT_TRUE(req);
  EXPECT_EQ(cursor, reinterpret_cast<const unsigned char*>(der.data()) + der.size());
  return req;
}

std::vector<std::string> csr_dns_names(X509_REQ* req) {
  std::vector<std::string> names;
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  int san_count = 0;
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) {
      continue;
    }
    ++san_count;
    auto* gens = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext));
    for (int j = 0; j < sk_GENERAL_NAME_num(gens); ++j) {
      const GENERAL_NAME* gen = sk_GENERAL_NAME_value(gens, j);
      EXPECT_EQ(gen->type, GEN_DNS);
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gen->d.dNSName)),
                         static_cast<size_t>(ASN1_STRING_length(gen->d.dNSName)));
    }
    GENERAL_NAMES_free(gens);
  }
  EXPECT_EQ(san_count, 1);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  return names;
}

TEST(CsrTest, SignedDerWithTheNames) {
  EcKey key = fresh_key();
  const std::vector<std::string> names = {"example.com", "www.example.com", "*.example.org"};
  auto der = make_csr_der(key, names);
  ASSERT_TRUE(der) << der.error().message;
  ReqPtr req = parse_csr(*der);
  ASSERT_TRUE(req);
  EXPECT_EQ(X509_REQ_get_version(req.get()), 0);
  EVP_PKEY* public_key = X509_REQ_get0_pubkey(req.get());
  ASSERT_NE(public_key, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(public_key, key.get()), 1);
  EXPECT_EQ(X509_REQ_verify(req.get(), public_key), 1);
  EXPECT_EQ(X509_REQ_get_signature_nid(req.get()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(test::common_name(X509_REQ_get_subject_name(req.get())), "example.com");
  EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())), 1);
  EXPECT_EQ(csr_dns_names(req.get()), names);
  EXPECT_NE(X509_REQ_verify(req.get(), fresh_key().get()), 1);
}

TEST(CsrTest, LongFirstNameStaysOutOfTheCommonName) {
  EcKey key = fresh_key();
  const std::string long_name = std::string(60, 'a') + ".example.com";
  auto der = make_csr_der(key, {long_name, "b.example.com"});
  ASSERT_TRUE(der) << der.error().message;
  ReqPtr req = parse_csr(*der);
  ASSERT_TRUE(req);
  EXPECT_EQ(X509_REQ_verify(req.get(), key.get()), 1);
  EXPECT_EQ(test::common_name(X509_REQ_get_subject_name(req.get())), "");
  EXPECT_EQ(csr_dns_names(req.get()), (std::vector<std::string>{long_name, "b.example.com"}));
}

TEST(CsrTest, RejectsBadNames) {
  EcKey key = fresh_key();
  EXPECT_FALSE(make_csr_der(key, {}));
  EXPECT_FALSE(make_csr_der(key, {""}));
  EXPECT_FALSE(make_csr_der(key, {"example.com", "bad name"}));
  EXPECT_FALSE(make_csr_der(key, {"caf\xc3\xa9.example"}));
  EXPECT_FALSE(make_csr_der(key, {std::string(254, 'a')}));
}

// ----------------------------------------------------------------------------- tls-alpn-01

TEST(TlsAlpnTest, CertificateFollowsRfc8737) {
  const std::string key_auth = "token-1." + fresh_key().thumbprint();
  auto challenge = make_tls_alpn_certificate("www.example.com", key_auth);
  ASSERT_TRUE(challenge) << challenge.error().message;

  ossl::BioPtr bio(
      BIO_new_mem_buf(challenge->cert_pem.data(), static_cast<int>(challenge->cert_pem.size())));
  ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(cert);
  EXPECT_EQ(test::san_dns_names(cert.get()), (std::vector<std::string>{"www.example.com"}));

  ASN1_OBJECT* oid = OBJ_txt2obj(ACME_IDENTIFIER_OID, 1);
  int index = X509_get_ext_by_OBJ(cert.get(), oid, -1);
  ASSERT_GE(index, 0);
  EXPECT_EQ(X509_get_ext_by_OBJ(cert.get(), oid, index), -1) << "acmeIdentifier twice";
  ASN1_OBJECT_free(oid);
  X509_EXTENSION* ext = X509_get_ext(cert.get(), index);
  EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(ext);
  const unsigned char* cursor = ASN1_STRING_get0_data(value);
  const unsigned char* end = cursor + ASN1_STRING_length(value);
  ASSERT_EQ(ASN1_STRING_length(value), 34);
  EXPECT_EQ(cursor[0], 0x04);  // OCTET STRING
  EXPECT_EQ(cursor[1], 0x20);  // of 32 bytes
  ASN1_OCTET_STRING* inner = d2i_ASN1_OCTET_STRING(nullptr, &cursor, end - cursor);
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(cursor, end);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(inner)),
                        static_cast<size_t>(ASN1_STRING_length(inner))),
            test::sha256_bytes(key_auth));
  ASN1_OCTET_STRING_free(inner);

  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(cert.get())), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert.get())), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(cert.get())), 0);

  auto key = EcKey::from_pem(challenge->key_pem);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(X509_check_private_key(cert.get(), key->get()), 1);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key->get()), 1);
}

TEST(TlsAlpnTest, FreshKeyEachTime) {
  auto first = make_tls_alpn_certificate("a.example", "t.x");
  auto second = make_tls_alpn_certificate("a.example", "t.x");
  ASSERT_TRUE(first && second);
  EXPECT_NE(first->key_pem, second->key_pem);
  EXPECT_NE(first->cert_pem, second->cert_pem);
}

TEST(TlsAlpnTest, RejectsBadInput) {
  EXPECT_FALSE(make_tls_alpn_certificate("", "t.x"));
  EXPECT_FALSE(make_tls_alpn_certificate("a b", "t.x"));
  EXPECT_FALSE(make_tls_alpn_certificate("a.example", ""));
}

// ----------------------------------------------------------------------------- inspect_chain

constexpr std::time_t NOT_BEFORE = 1700000000;              // 2023-11-14T22:13:20Z
constexpr std::time_t NOT_AFTER = NOT_BEFORE + 90 * 86400;  // 2024-02-12T22:13:20Z
constexpr std::time_t DURING = NOT_BEFORE + 86400;

class InspectChainTest : public ::testing::Test {
 protected:
  test::Issued root_ = test::make_test_ca("Test Root");
  test::Issued intermediate_ = test::make_test_ca("Test Intermediate", &root_);
  test::Issued leaf_ = test::make_test_leaf(intermediate_, {"example.com", "www.example.com"},
                                            "0123456789ABCDEF01", NOT_BEFORE, NOT_AFTER);

  std::string chain() const {
    return test::pem_of(leaf_.cert.get()) + test::pem_of(intermediate_.cert.get());
  }
  std::string key() const { return test::pem_of(leaf_.key.get()); }
};

TEST_F(InspectChainTest, ReportsTheLeaf) {
  auto info = inspect_chain(chain(), key(), DURING);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->names, (std::vector<std::string>{"example.com", "www.example.com"}));
  EXPECT_EQ(info->issuer, "CN=Test Intermediate,O=frontdoor tests");
  EXPECT_EQ(info->serial_hex, "0123456789abcdef01");
  EXPECT_EQ(info->not_before, NOT_BEFORE);
  EXPECT_EQ(info->not_after, NOT_AFTER);
}

TEST_F(InspectChainTest, AcceptsLeafAloneAndFullChain) {
  EXPECT_TRUE(inspect_chain(test::pem_of(leaf_.cert.get()), key(), DURING));
  auto full = inspect_chain(chain() + test::pem_of(root_.cert.get()), key(), DURING);
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->names.size(), 2u);
}

TEST_F(InspectChainTest, BoundsOfTheValidity) {
  EXPECT_TRUE(inspect_chain(chain(), key(), NOT_BEFORE));
  EXPECT_TRUE(inspect_chain(chain(), key(), NOT_AFTER));
  EXPECT_FALSE(inspect_chain(chain(), key(), NOT_AFTER + 1));
  EXPECT_FALSE(inspect_chain(chain(), key(), NOT_BEFORE - 1));
}

TEST_F(InspectChainTest, GeneralizedTimeAfter2049) {
  const std::time_t after_2050 = 2556143999;  // 2050-12-31T23:59:59Z, a GeneralizedTime
  test::Issued leaf =
      test::make_test_leaf(intermediate_, {"late.example"}, "02", NOT_BEFORE, after_2050);
  auto info = inspect_chain(test::pem_of(leaf.cert.get()) + test::pem_of(intermediate_.cert.get()),
                            test::pem_of(leaf.key.get()), DURING);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->not_after, after_2050);
  EXPECT_EQ(info->serial_hex, "02");
}

TEST_F(InspectChainTest, WrongKey) {
  EXPECT_FALSE(inspect_chain(chain(), test::pem_of(intermediate_.key.get()), DURING));
  EXPECT_FALSE(inspect_chain(chain(), fresh_key().to_pem(), DURING));
  EXPECT_FALSE(inspect_chain(chain(), "not a key", DURING));
  EXPECT_FALSE(inspect_chain(chain(), "", DURING));
}

TEST_F(InspectChainTest, LeafNotSignedByTheNextCertificate) {
  // Same subject name as the real intermediate, different key.
  test::Issued impostor = test::make_test_ca("Test Intermediate", &root_);
  auto info = inspect_chain(test::pem_of(leaf_.cert.get()) + test::pem_of(impostor.cert.get()),
                            key(), DURING);
  EXPECT_FALSE(info);
  // Right order matters: root before intermediate breaks the chain too.
  EXPECT_FALSE(inspect_chain(test::pem_of(leaf_.cert.get()) + test::pem_of(root_.cert.get()) +
                                 test::pem_of(intermediate_.cert.get()),
                             key(), DURING));
  // And the intermediate's signature is checked as well, not only the leaf's.
  test::Issued other_root = test::make_test_ca("Test Root");
  EXPECT_FALSE(inspect_chain(chain() + test::pem_of(other_root.cert.get()), key(), DURING));
}

TEST_F(InspectChainTest, NamesAreOnlyTheDnsEntries) {
  test::Issued leaf = test::make_test_leaf(
      intermediate_, {"a.example", "IP:192.0.2.1", "email:ops@a.example", "b.example"}, "04",
      NOT_BEFORE, NOT_AFTER);
  auto info = inspect_chain(test::pem_of(leaf.cert.get()) + test::pem_of(intermediate_.cert.get()),
                            test::pem_of(leaf.key.get()), DURING);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->names, (std::vector<std::string>{"a.example", "b.example"}));
}

TEST_F(InspectChainTest, IssuerNameMustBeTheNextSubject) {
  // Signed with the intermediate's key, but naming someone else as its issuer.
  test::Issued leaf =
      test::make_test_leaf(intermediate_, {"x.example"}, "03", NOT_BEFORE, NOT_AFTER);
  X509_NAME* other = X509_NAME_new();
  X509_NAME_add_entry_by_txt(other, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Someone Else"), -1, -1, 0);
  ASSERT_EQ(X509_set_issuer_name(leaf.cert.get(), other), 1);
  X509_NAME_free(other);
  ASSERT_GT(X509_sign(leaf.cert.get(), intermediate_.key.get(), EVP_sha256()), 0);
  ASSERT_EQ(X509_verify(leaf.cert.get(), intermediate_.key.get()), 1);
  EXPECT_FALSE(inspect_chain(test::pem_of(leaf.cert.get()) + test::pem_of(intermediate_.cert.get()),
                             test::pem_of(leaf.key.get()), DURING));
}

TEST_F(InspectChainTest, RejectsGarbage) {
  EXPECT_FALSE(inspect_chain("", key(), DURING));
  EXPECT_FALSE(inspect_chain("garbage", key(), DURING));
  EXPECT_FALSE(inspect_chain(key(), key(), DURING));
  std::string broken = chain();
  broken.replace(broken.rfind("-----END CERTIFICATE-----") - 20, 8, "!!!!!!!!");
  EXPECT_FALSE(inspect_chain(broken, key(), DURING));
  EXPECT_FALSE(inspect_chain(chain().substr(0, chain().size() - 40), key(), DURING));
}

}  // namespace
}  // namespace fd::acme
