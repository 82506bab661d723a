#include "config/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>
#include <vector>

#include "tests/unit/config/test_certs.h"

namespace fd::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// A valid config built in code, as quick mode does; marks are made up so tests can check them.
Config valid_config() {
  Config cfg;
  cfg.source = "test.yaml";
  Listener listener;
  listener.address = "0.0.0.0:8080";
  listener.endpoint = HostPort{"0.0.0.0", 8080};
  listener.mark = {2, 5};
  cfg.listeners.push_back(listener);
  Upstream upstream;
  upstream.name = "app";
  upstream.mark = {4, 3};
  ServerSpec server;
  server.address = "app-1:8000";
  server.endpoint = HostPort{"app-1", 8000};
  server.mark = {5, 16};
  upstream.servers.push_back(server);
  cfg.upstreams.push_back(upstream);
  Route route;
  route.upstream = "app";
  route.mark = {7, 5};
  route.upstream_mark = {7, 15};
  cfg.routes.push_back(route);
  return cfg;
}

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
