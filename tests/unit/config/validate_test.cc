#include "config/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>
#include <vector>

#include "tests/unit/config/test_certs.h"
#include "tests/unit/config/test_support.h"

namespace fd::config {
namespace {

using test::valid_config;

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

Listener listener_at(const std::string& address, const HostPort& endpoint, Mark mark) {
  Listener listener;
  listener.address = address;
  listener.endpoint = endpoint;
  listener.mark = mark;
  return listener;
}

// "LINE:COL: message" for each diagnostic.
std::vector<std::string> validate_errors(const Config& cfg) {
  std::vector<Diagnostic> diagnostics;
  validate(cfg, &diagnostics);
  std::vector<std::string> out;
  for (const Diagnostic& d : diagnostics) {
    EXPECT_EQ(d.file, cfg.source);
    out.push_back(std::to_string(d.line) + ":" + std::to_string(d.col) + ": " + d.message);
  }
  return out;
}

TEST(Validate, ValidConfigHasNoErrors) {
  EXPECT_THAT(validate_errors(valid_config()), IsEmpty());
}

TEST(Validate, EmptyConfig) {
  Config cfg;
  cfg.source = "<quick>";
  EXPECT_THAT(validate_errors(cfg), ElementsAre("0:0: at least one listener is required",
                                                "0:0: at least one upstream is required",
                                                "0:0: at least one route is required"));
}

TEST(Validate, DuplicateListenAddress) {
  Config cfg = valid_config();
  cfg.listeners.push_back(listener_at("0.0.0.0:8080", {"0.0.0.0", 8080}, {3, 5}));
  EXPECT_THAT(validate_errors(cfg), ElementsAre("3:5: duplicate listen address \"0.0.0.0:8080\""));
}

TEST(Validate, AnyAddressSpellingsAreTheSame) {
  Config cfg = valid_config();
  cfg.listeners.push_back(listener_at("*:80", {"", 80}, {3, 5}));
  cfg.listeners.push_back(listener_at(":80", {"", 80}, {4, 5}));
  EXPECT_THAT(validate_errors(cfg), ElementsAre("4:5: duplicate listen address \":80\""));
}

TEST(Validate, SamePortOnDifferentHostsIsFine) {
  Config cfg = valid_config();
  cfg.listeners.push_back(listener_at("127.0.0.1:8080", {"127.0.0.1", 8080}, {3, 5}));
  cfg.listeners.push_back(listener_at("[::]:8080", {"::", 8080}, {4, 5}));
  EXPECT_THAT(validate_errors(cfg), IsEmpty());
}

TEST(Validate, TlsListenerNeedsACertificate) {
  Config cfg = valid_config();
  cfg.listeners[0].tls = true;
  EXPECT_THAT(
      validate_errors(cfg),
      ElementsAre("2:5: listener 0.0.0.0:8080 has tls: true but tls.certificates is empty"));
}

TEST(Validate, UpstreamProblems) {
  Config cfg = valid_config();
  cfg.upstreams[0].servers[0].weight = 0;
  Upstream empty;
  empty.name = "empty";
  empty.mark = {9, 3};
  cfg.upstreams.push_back(empty);
  Upstream duplicate = cfg.upstreams[0];
  duplicate.mark = {11, 3};
  duplicate.servers[0].weight = 1;
  cfg.upstreams.push_back(duplicate);
  EXPECT_THAT(
      validate_errors(cfg),
      ElementsAre("5:16: server app-1:8000 in upstream \"app\" has weight 0; it must be at "
                  "least 1",
                  "9:3: upstream \"empty\" has no servers", "11:3: duplicate upstream \"app\""));
}

TEST(Validate, RouteToUnknownUpstream) {
  Config cfg = valid_config();
  Route route = cfg.routes[0];
  route.upstream = "api";
  route.upstream_mark = {9, 15};
  cfg.routes.push_back(route);
  EXPECT_THAT(validate_errors(cfg), ElementsAre("9:15: route refers to unknown upstream \"api\""));
}

TEST(Validate, HealthCheckTimeoutLongerThanInterval) {
  Config cfg = valid_config();
  cfg.upstreams[0].health_check.interval = std::chrono::seconds(1);
  cfg.upstreams[0].health_check.timeout = std::chrono::milliseconds(1500);
  cfg.upstreams[0].health_check.mark = {6, 7};
  // Only checked when health checks are on.
  EXPECT_THAT(validate_errors(cfg), IsEmpty());
  cfg.upstreams[0].health_check_enabled = true;
  EXPECT_THAT(validate_errors(cfg),
              ElementsAre("6:7: upstream \"app\": health_check timeout 1500ms must not be longer "
                          "than its interval 1s"));
  cfg.upstreams[0].health_check.timeout = std::chrono::seconds(1);
  EXPECT_THAT(validate_errors(cfg), IsEmpty());
}

// valid_config() (listening on 0.0.0.0:8080) with the admin listener on |address|, at 12:3.
Config with_admin(const std::string& address, const HostPort& endpoint) {
  Config cfg = valid_config();
  cfg.admin.enabled = true;
  cfg.admin.address = address;
  cfg.admin.endpoint = endpoint;
  cfg.admin.mark = {12, 3};
  return cfg;
}

TEST(Validate, AdminAddressIsAlsoAListenAddress) {
  Config cfg = with_admin("127.0.0.1:8443", {"127.0.0.1", 8443});
  cfg.listeners.push_back(listener_at("127.0.0.1:8443", {"127.0.0.1", 8443}, {3, 5}));
  EXPECT_THAT(validate_errors(cfg),
              ElementsAre("12:3: admin address 127.0.0.1:8443 is also a listen address"));
  // Compared as bound: "*", "" and "0.0.0.0" are one address, and so are IPv6 spellings.
  EXPECT_THAT(validate_errors(with_admin("*:8080", {"", 8080})),
              ElementsAre("12:3: admin address *:8080 is also a listen address"));
  Config v6 = with_admin("[0::1]:9000", {"0::1", 9000});
  v6.listeners.push_back(listener_at("[::1]:9000", {"::1", 9000}, {3, 5}));
  EXPECT_THAT(validate_errors(v6),
              ElementsAre("12:3: admin address [0::1]:9000 is also a listen address"));
  Config name = with_admin("LocalHost:9000", {"LocalHost", 9000});
  name.listeners.push_back(listener_at("localhost:9000", {"localhost", 9000}, {3, 5}));
  EXPECT_THAT(validate_errors(name),
              ElementsAre("12:3: admin address LocalHost:9000 is also a listen address"));
}

TEST(Validate, AdminAddressInsideAnyAddressListener) {
  // valid_config() listens on 0.0.0.0:8080, which takes 127.0.0.1:8080 as well.
  EXPECT_THAT(validate_errors(with_admin("127.0.0.1:8080", {"127.0.0.1", 8080})),
              ElementsAre("12:3: admin address 127.0.0.1:8080 overlaps listen address "
                          "0.0.0.0:8080"));
  EXPECT_THAT(validate_errors(with_admin("localhost:8080", {"localhost", 8080})),
              ElementsAre("12:3: admin address localhost:8080 overlaps listen address "
                          "0.0.0.0:8080"));
  Config v6 = with_admin("[::1]:9901", {"::1", 9901});
  v6.listeners.push_back(listener_at("[::]:9901", {"::", 9901}, {3, 5}));
  EXPECT_THAT(validate_errors(v6),
              ElementsAre("12:3: admin address [::1]:9901 overlaps listen address [::]:9901"));
  // And the other way round: an any-address admin over a specific listener.
  Config any_admin = with_admin("[::]:9000", {"::", 9000});
  any_admin.listeners.push_back(listener_at("[::1]:9000", {"::1", 9000}, {3, 5}));
  EXPECT_THAT(validate_errors(any_admin),
              ElementsAre("12:3: admin address [::]:9000 overlaps listen address [::1]:9000"));
}

TEST(Validate, AdminAddressThatDoesNotCollide) {
  // Other port; other IPv4 address; IPv6 listeners are v6-only, so "[::]" leaves IPv4 alone.
  EXPECT_THAT(validate_errors(with_admin("0.0.0.0:9901", {"0.0.0.0", 9901})), IsEmpty());
  Config cfg = with_admin("127.0.0.1:9000", {"127.0.0.1", 9000});
  cfg.listeners.push_back(listener_at("127.0.0.2:9000", {"127.0.0.2", 9000}, {3, 5}));
  cfg.listeners.push_back(listener_at("[::]:9000", {"::", 9000}, {4, 5}));
  EXPECT_THAT(validate_errors(cfg), IsEmpty());
  // A disabled admin section is never bound.
  Config off = with_admin("0.0.0.0:8080", {"0.0.0.0", 8080});
  off.admin.enabled = false;
  EXPECT_THAT(validate_errors(off), IsEmpty());
}

// Certificate checks against files written at test time.
class ValidateCertificates : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = test::make_key();
    cert_ = test::make_certificate(key_.get(), "localhost");
    cert_path_ = dir_.write("site.crt", test::to_pem(cert_.get()));
    key_path_ = dir_.write("site.key", test::to_pem(key_.get()));
  }

  // valid_config() with one TLS listener and the certificate |cert| / |key| at line 10.
  std::vector<std::string> check(const std::string& cert, const std::string& key) {
    Config cfg = valid_config();
    cfg.listeners[0].tls = true;
    Certificate certificate;
    certificate.cert = cert;
    certificate.key = key;
    certificate.mark = {10, 7};
    cfg.tls.certificates.push_back(certificate);
    std::vector<std::string> errors = validate_errors(cfg);
    EXPECT_EQ(ERR_peek_error(), 0u) << "validate left errors on the OpenSSL error queue";
    return errors;
  }

  test::TempDir dir_;
  fd::ossl::PkeyPtr key_;
  fd::ossl::X509Ptr cert_;
  std::string cert_path_;
  std::string key_path_;
};

TEST_F(ValidateCertificates, MatchingPair) {
  EXPECT_THAT(check(cert_path_, key_path_), IsEmpty());
}

TEST_F(ValidateCertificates, LeafThenChain) {
  auto ca_key = test::make_key();
  auto ca = test::make_certificate(ca_key.get(), "Test CA");
  std::string chain = dir_.write("chain.crt", test::to_pem(cert_.get()) + test::to_pem(ca.get()));
  EXPECT_THAT(check(chain, key_path_), IsEmpty());
}

TEST_F(ValidateCertificates, KeyAndCertificateInOneFile) {
  std::string both = dir_.write("both.pem", test::to_pem(key_.get()) + test::to_pem(cert_.get()));
  EXPECT_THAT(check(both, both), IsEmpty());
}

TEST_F(ValidateCertificates, MissingFilesAreBothReported) {
  std::string cert = dir_.path() + "/missing.crt";
  std::string key = dir_.path() + "/missing.key";
  EXPECT_THAT(
      check(cert, key),
      ElementsAre("10:7: cannot read certificate file " + cert + ": No such file or directory",
                  "10:7: cannot read key file " + key + ": No such file or directory"));
}

TEST_F(ValidateCertificates, DirectoryIsNotAFile) {
  EXPECT_THAT(check(dir_.path(), key_path_), ElementsAre("10:7: cannot read certificate file " +
                                                         dir_.path() + ": Is a directory"));
}

TEST_F(ValidateCertificates, KeyDoesNotMatch) {
  auto other = test::make_key();
  std::string other_path = dir_.write("other.key", test::to_pem(other.get()));
  EXPECT_THAT(check(cert_path_, other_path),
              ElementsAre("10:7: key " + other_path + " does not match certificate " + cert_path_));
}

TEST_F(ValidateCertificates, NotPem) {
  std::string text = dir_.write("notes.txt", "hello\n");
  EXPECT_THAT(
      check(text, text),
      ElementsAre("10:7: cannot parse certificate file " + text + ": no PEM certificate found",
                  "10:7: cannot parse key file " + text + ": no PEM private key found"));
}

TEST_F(ValidateCertificates, EmptyFiles) {
  std::string empty = dir_.write("empty.pem", "");
  EXPECT_THAT(
      check(empty, empty),
      ElementsAre("10:7: cannot parse certificate file " + empty + ": no PEM certificate found",
                  "10:7: cannot parse key file " + empty + ": no PEM private key found"));
}

TEST_F(ValidateCertificates, FilesSwapped) {
  EXPECT_THAT(
      check(key_path_, cert_path_),
      ElementsAre("10:7: cannot parse certificate file " + key_path_ + ": no PEM certificate found",
                  "10:7: cannot parse key file " + cert_path_ + ": no PEM private key found"));
}

TEST_F(ValidateCertificates, EncryptedKey) {
  std::string encrypted = dir_.write("enc.key", test::to_encrypted_pem(key_.get(), "secret"));
  EXPECT_THAT(check(cert_path_, encrypted),
              ElementsAre("10:7: cannot parse key file " + encrypted +
                          ": the key is encrypted; a key without passphrase is needed"));
}

TEST_F(ValidateCertificates, CorruptLeaf) {
  std::string corrupt =
      dir_.write("bad.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_THAT(check(corrupt, key_path_),
              ElementsAre(StartsWith("10:7: cannot parse certificate file " + corrupt + ": ")));
}

TEST_F(ValidateCertificates, CorruptChain) {
  std::string corrupt = dir_.write(
      "bad-chain.crt",
      test::to_pem(cert_.get()) + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_THAT(check(corrupt, key_path_),
              ElementsAre(StartsWith("10:7: cannot parse certificate chain in " + corrupt + ": ")));
}

TEST_F(ValidateCertificates, CorruptKey) {
  std::string corrupt =
      dir_.write("bad.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  EXPECT_THAT(check(cert_path_, corrupt),
              ElementsAre(StartsWith("10:7: cannot parse key file " + corrupt + ": ")));
}

}  // namespace
}  // namespace fd::config
