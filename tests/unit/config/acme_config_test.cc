// tls.acme: managed certificates. Loading (keys, defaults, values) and validation (listeners the
// CA can reach, the ca_bundle file).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <map>
#include <string>
#include <vector>

#include "config/load.h"
#include "config/validate.h"
#include "tests/unit/config/test_certs.h"
#include "tests/unit/config/test_support.h"

namespace fd::config {
namespace {

using test::errors_of;
using test::fake_env;
using test::valid_config;

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::vector<std::string> load_errors(const std::string& yaml, const Environment& env = fake_env()) {
  LoadResult result = load_string(yaml, "test.yaml", env);
  EXPECT_FALSE(result.config.has_value());
  return errors_of(result);
}

Config load_ok(const std::string& yaml, const Environment& env = fake_env()) {
  LoadResult result = load_string(yaml, "test.yaml", env);
  EXPECT_THAT(errors_of(result), ElementsAre());
  return result.config.value_or(Config{});
}

// A valid config with one plain listener (so http-01 is reachable); lines 1-7.
const std::string BASE = R"(listen:
  - address: "127.0.0.1:8080"
upstreams:
  app:
    servers: ["127.0.0.1:9000"]
routes:
  - upstream: app
)";

// BASE with a tls.acme section whose keys, indented by four spaces, start on line 10.
std::string with_acme(const std::string& keys) {
  return BASE + "tls:\n  acme:\n" + keys;
}

// The required keys, on lines 10 and 11; tests add theirs from line 12.
const std::string REQUIRED = R"(    directory: "https://acme.example/directory"
    domains: [example.com]
)";

TEST(AcmeConfig, OffUnlessPresent) {
  Config cfg = load_ok(BASE + "tls:\n  min_version: \"1.3\"\n");
  EXPECT_FALSE(cfg.tls.acme_enabled);
  EXPECT_EQ(cfg.tls.acme.directory, "");
  EXPECT_TRUE(cfg.tls.acme.domains.empty());
  EXPECT_EQ(cfg.tls.acme.mark.line, 0);
}

TEST(AcmeConfig, Defaults) {
  Config cfg = load_ok(with_acme(REQUIRED));
  EXPECT_TRUE(cfg.tls.acme_enabled);
  const Acme& acme = cfg.tls.acme;
  EXPECT_EQ(acme.directory, "https://acme.example/directory");
  EXPECT_EQ(acme.email, "");
  EXPECT_THAT(acme.domains, ElementsAre("example.com"));
  EXPECT_EQ(acme.challenge, "http-01");
  EXPECT_EQ(acme.storage, "/var/lib/frontdoor");
  EXPECT_EQ(acme.ca_bundle, "");
  EXPECT_TRUE(acme.renew_auto);
  EXPECT_EQ(acme.renew_before, 0ms);
  EXPECT_EQ(acme.eab_kid, "");
  EXPECT_EQ(acme.eab_hmac_key, "");
  // The position of the value: a block map starts at its first key.
  EXPECT_EQ(acme.mark.line, 10);
  EXPECT_EQ(acme.mark.col, 5);
  EXPECT_TRUE(cfg.tls.certificates.empty());
}

TEST(AcmeConfig, FlowMapMarkIsItsBrace) {
  Config cfg =
      load_ok(BASE + "tls:\n  acme: {directory: \"https://ca.example/d\", domains: [a.b]}\n");
  EXPECT_TRUE(cfg.tls.acme_enabled);
  EXPECT_EQ(cfg.tls.acme.mark.line, 9);
  EXPECT_EQ(cfg.tls.acme.mark.col, 9);
}

// Every key, with values other than the defaults, and ${VAR} expansion; a TLS listener served by
// managed certificates only.
TEST(AcmeConfig, AllKeys) {
  test::TempDir dir;
  auto key = test::make_key();
  auto ca = test::make_certificate(key.get(), "Pebble Root");
  std::string bundle = dir.write("ca.pem", test::to_pem(ca.get()));
  Config cfg =
      load_ok(R"(listen:
  - address: "0.0.0.0:443"
    tls: true
  - address: "0.0.0.0:80"
    redirect_https: true
upstreams:
  app:
    servers: ["127.0.0.1:9000"]
routes:
  - upstream: app
tls:
  acme:
    directory: ${ACME_DIRECTORY}
    email: "ops@example.com"
    domains: [Example.com, WWW.example.COM, api-2.example.com, xn--bcher-kva.example]
    challenge: tls-alpn-01
    storage: /srv/frontdoor/acme
    ca_bundle: ${CA_BUNDLE}
    renew: 30d
    eab_kid: kid-1
    eab_hmac_key: c2VjcmV0LWhtYWMta2V5_-A
)",
              fake_env({{"ACME_DIRECTORY", "http://127.0.0.1:14000/dir"}, {"CA_BUNDLE", bundle}}));
  ASSERT_TRUE(cfg.tls.acme_enabled);
  const Acme& acme = cfg.tls.acme;
  EXPECT_EQ(acme.directory, "http://127.0.0.1:14000/dir");
  EXPECT_EQ(acme.email, "ops@example.com");
  EXPECT_THAT(acme.domains, ElementsAre("example.com", "www.example.com", "api-2.example.com",
                                        "xn--bcher-kva.example"));
  EXPECT_EQ(acme.challenge, "tls-alpn-01");
  EXPECT_EQ(acme.storage, "/srv/frontdoor/acme");
  EXPECT_EQ(acme.ca_bundle, bundle);
  EXPECT_FALSE(acme.renew_auto);
  EXPECT_EQ(acme.renew_before, 30 * 24h);
  EXPECT_EQ(acme.eab_kid, "kid-1");
  EXPECT_EQ(acme.eab_hmac_key, "c2VjcmV0LWhtYWMta2V5_-A");
  EXPECT_EQ(acme.mark.line, 13);
  EXPECT_EQ(acme.mark.col, 5);
  EXPECT_TRUE(cfg.tls.certificates.empty());
}

TEST(AcmeConfig, StaticAndManagedCertificatesTogether) {
  test::TempDir dir;
  auto key = test::make_key();
  auto cert = test::make_certificate(key.get(), "static.example");
  std::string cert_path = dir.write("site.crt", test::to_pem(cert.get()));
  std::string key_path = dir.write("site.key", test::to_pem(key.get()));
  Config cfg = load_ok(R"(listen:
  - address: ":443"
    tls: true
  - address: ":80"
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
tls:
  certificates:
    - cert: ${CERT}
      key: ${KEY}
  acme:
    directory: "https://acme.example/directory"
    domains: [managed.example]
)",
                       fake_env({{"CERT", cert_path}, {"KEY", key_path}}));
  ASSERT_EQ(cfg.tls.certificates.size(), 1u);
  EXPECT_EQ(cfg.tls.certificates[0].cert, cert_path);
  EXPECT_TRUE(cfg.tls.acme_enabled);
  EXPECT_THAT(cfg.tls.acme.domains, ElementsAre("managed.example"));
}

TEST(AcmeConfig, EmptySectionStillNeedsDirectoryAndDomains) {
  // Present, even empty, turns ACME on: the required keys are reported at the section.
  EXPECT_THAT(load_errors(BASE + "tls:\n  acme:\n"),
              ElementsAre("9:3: missing required key \"directory\"",
                          "9:3: missing required key \"domains\""));
  EXPECT_THAT(load_errors(BASE + "tls:\n  acme: {}\n"),
              ElementsAre("9:9: missing required key \"directory\"",
                          "9:9: missing required key \"domains\""));
  EXPECT_THAT(load_errors(with_acme("    email: ops@example.com\n")),
              ElementsAre("10:5: missing required key \"directory\"",
                          "10:5: missing required key \"domains\""));
}

TEST(AcmeConfig, SectionMustBeAMap) {
  EXPECT_THAT(load_errors(BASE + "tls:\n  acme: [a]\n"),
              ElementsAre("9:9: expected a map for \"acme\", got a sequence"));
  EXPECT_THAT(load_errors(BASE + "tls:\n  acme: true\n"),
              ElementsAre("9:9: expected a map for \"acme\", got \"true\""));
}

TEST(AcmeConfig, UnknownAndDuplicateKeys) {
  EXPECT_THAT(load_errors(with_acme(REQUIRED + R"(    dns_provider: route53
    eab: {kid: a, hmac_key: b}
    domains: [other.example]
)")),
              ElementsAre("12:5: unknown key \"dns_provider\"", "13:5: unknown key \"eab\"",
                          "14:5: duplicate key \"domains\""));
}

TEST(AcmeConfig, Directories) {
  // Plain http only for a CA on this machine (Pebble in tests); any case of "localhost".
  for (const char* url :
       {"https://acme-v02.api.letsencrypt.org/directory", "https://ca.example:8443/dir?x=1",
        "https://[2001:db8::1]/dir", "http://127.0.0.1:14000/dir", "http://localhost:14000/dir",
        "http://LocalHost/dir", "http://[::1]:14000/dir", "http://localhost"}) {
    std::string keys = "    directory: \"" + std::string(url) + "\"\n    domains: [a.example]\n";
    EXPECT_EQ(load_ok(with_acme(keys)).tls.acme.directory, url);
  }
}

TEST(AcmeConfig, BadDirectories) {
  auto errors = [](const std::string& value) {
    return load_errors(with_acme("    directory: " + value + "\n    domains: [a.example]\n"));
  };
  const std::string http_only =
      "10:16: directory must be an https:// URL (http:// is allowed only for 127.0.0.1, "
      "localhost and [::1]), got ";
  EXPECT_THAT(
      errors("\"ftp://ca.example/dir\""),
      ElementsAre("10:16: directory must be an https:// URL, got \"ftp://ca.example/dir\""));
  EXPECT_THAT(errors("acme.example/directory"),
              ElementsAre("10:16: directory must be an https:// URL, got "
                          "\"acme.example/directory\""));
  EXPECT_THAT(errors("\"HTTPS://ca.example/dir\""),
              ElementsAre("10:16: directory must be an https:// URL, got "
                          "\"HTTPS://ca.example/dir\""));
  EXPECT_THAT(errors("\"\""), ElementsAre("10:16: directory must be an https:// URL, got \"\""));
  EXPECT_THAT(errors("\"http://ca.example/dir\""),
              ElementsAre(http_only + "\"http://ca.example/dir\""));
  EXPECT_THAT(errors("\"http://localhost.ca.example/dir\""),
              ElementsAre(http_only + "\"http://localhost.ca.example/dir\""));
  EXPECT_THAT(errors("\"http://127.0.0.2/dir\""),
              ElementsAre(http_only + "\"http://127.0.0.2/dir\""));
  // Userinfo is not the host.
  EXPECT_THAT(errors("\"http://localhost@ca.example/dir\""),
              ElementsAre(http_only + "\"http://localhost@ca.example/dir\""));
  EXPECT_THAT(errors("\"http://localhost:80@ca.example/dir\""),
              ElementsAre(http_only + "\"http://localhost:80@ca.example/dir\""));
  EXPECT_THAT(errors("\"https:///dir\""),
              ElementsAre("10:16: directory has no host, got \"https:///dir\""));
  EXPECT_THAT(errors("\"https://\""),
              ElementsAre("10:16: directory has no host, got \"https://\""));
  EXPECT_THAT(errors("\"https://[::1/dir\""),
              ElementsAre("10:16: directory has no host, got \"https://[::1/dir\""));
  EXPECT_THAT(errors("\"https://ca.example/a dir\""),
              ElementsAre("10:16: directory must not contain spaces or control characters, got "
                          "\"https://ca.example/a dir\""));
  EXPECT_THAT(errors("[https://ca.example/dir]"),
              ElementsAre("10:16: expected a URL for \"directory\", got a sequence"));
  // An empty value points at its key.
  EXPECT_THAT(errors(""),
              ElementsAre("10:5: expected a URL for \"directory\", got an empty value"));
  EXPECT_THAT(errors("${ACME_DIRECTORY}"),
              ElementsAre("10:16: environment variable ACME_DIRECTORY is not set"));
}

TEST(AcmeConfig, Email) {
  EXPECT_EQ(load_ok(with_acme(REQUIRED + "    email: ops+acme@example.com\n")).tls.acme.email,
            "ops+acme@example.com");
  auto errors = [](const std::string& value) {
    return load_errors(with_acme(REQUIRED + "    email: " + value + "\n"));
  };
  EXPECT_THAT(errors("ops"),
              ElementsAre("12:12: email must be one address like ops@example.com, got \"ops\""));
  EXPECT_THAT(errors("a@b@example.com"),
              ElementsAre("12:12: email must be one address like ops@example.com, got "
                          "\"a@b@example.com\""));
  EXPECT_THAT(errors("\"@example.com\""),
              ElementsAre("12:12: email must be one address like ops@example.com, got "
                          "\"@example.com\""));
  EXPECT_THAT(errors("ops@"),
              ElementsAre("12:12: email must be one address like ops@example.com, got \"ops@\""));
  EXPECT_THAT(errors("\"ops @example.com\""),
              ElementsAre("12:12: email must not contain spaces or control characters, got "
                          "\"ops @example.com\""));
  EXPECT_THAT(errors("\"ops@example.com\\t\""),
              ElementsAre("12:12: email must not contain spaces or control characters, got "
                          "\"ops@example.com\t\""));
  // Empty means no contact, so that "${ACME_EMAIL:-}" can leave it out.
  EXPECT_EQ(load_ok(with_acme(REQUIRED + "    email: \"\"\n")).tls.acme.email, "");
  EXPECT_THAT(errors("[ops@example.com]"),
              ElementsAre("12:12: expected a string for \"email\", got a sequence"));
}

TEST(AcmeConfig, DomainsAreStoredInLowerCase) {
  Config cfg = load_ok(with_acme(R"(    directory: "https://acme.example/directory"
    domains:
      - Example.COM
      - www.example.com
      - localhost
)"));
  EXPECT_THAT(cfg.tls.acme.domains, ElementsAre("example.com", "www.example.com", "localhost"));
}

TEST(AcmeConfig, DomainLengthLimits) {
  std::string label63(63, 'a');
  std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(name253.size(), 253u);
  Config cfg = load_ok(with_acme(R"(    directory: "https://acme.example/directory"
    domains: [)" + name253 + ", " +
                                 label63 + ".example, a.b]\n"));
  EXPECT_THAT(cfg.tls.acme.domains, ElementsAre(name253, label63 + ".example", "a.b"));

  std::string name254 = name253 + "b";
  std::string label64 = label63 + "a";
  EXPECT_THAT(
      load_errors(with_acme(R"(    directory: "https://acme.example/directory"
    domains:
      - )" + name254 + R"(
      - )" + label64 + R"(.example
)")),
      ElementsAre("12:9: invalid domain name \"" + name254 + "\": longer than 253 characters",
                  "13:9: invalid domain name \"" + label64 + ".example\": label \"" + label64 +
                      "\" is longer than 63 characters"));
}

TEST(AcmeConfig, BadDomains) {
  EXPECT_THAT(load_errors(with_acme(R"(    directory: "https://acme.example/directory"
    domains:
      - "*.example.com"
      - "*"
      - exa_mple.com
      - "ex ample.com"
      - bücher.example
      - a..example.com
      - .example.com
      - example.com.
      - -a.example.com
      - www.example-.com
      - ""
      - 10.0.0.1
      - [a.example]
      - {name: a.example}
      -
      - good.example
)")),
              ElementsAre("12:9: wildcard domain \"*.example.com\" is not supported: http-01 and "
                          "tls-alpn-01 cannot validate wildcards",
                          "13:9: wildcard domain \"*\" is not supported: http-01 and tls-alpn-01 "
                          "cannot validate wildcards",
                          "14:9: invalid domain name \"exa_mple.com\": only letters, digits, "
                          "\"-\" and \".\" are allowed",
                          "15:9: invalid domain name \"ex ample.com\": only letters, digits, "
                          "\"-\" and \".\" are allowed",
                          "16:9: invalid domain name \"bücher.example\": only letters, digits, "
                          "\"-\" and \".\" are allowed",
                          "17:9: invalid domain name \"a..example.com\": empty label",
                          "18:9: invalid domain name \".example.com\": empty label",
                          "19:9: invalid domain name \"example.com.\": empty label",
                          "20:9: invalid domain name \"-a.example.com\": label \"-a\" starts or "
                          "ends with \"-\"",
                          "21:9: invalid domain name \"www.example-.com\": label \"example-\" "
                          "starts or ends with \"-\"",
                          "22:9: invalid domain name \"\": empty",
                          "23:9: invalid domain name \"10.0.0.1\": the last label is all digits "
                          "(IP addresses are not supported)",
                          "24:9: expected a domain name for an entry of \"domains\", got a "
                          "sequence",
                          "25:9: expected a domain name for an entry of \"domains\", got a map",
                          // yaml-cpp marks an empty item at the next token.
                          "27:7: expected a domain name for an entry of \"domains\", got an "
                          "empty value"));
}

TEST(AcmeConfig, DuplicateDomainsIgnoreCase) {
  EXPECT_THAT(load_errors(with_acme(R"(    directory: "https://acme.example/directory"
    domains: [example.com, www.example.com, EXAMPLE.com, www.example.com]
)")),
              ElementsAre("11:45: duplicate domain \"EXAMPLE.com\"",
                          "11:58: duplicate domain \"www.example.com\""));
}

TEST(AcmeConfig, DomainsMustBeANonEmptySequence) {
  auto errors = [](const std::string& value) {
    return load_errors(with_acme(
        "    directory: \"https://acme.example/directory\"\n    domains: " + value + "\n"));
  };
  EXPECT_THAT(errors("[]"), ElementsAre("11:14: \"domains\" must not be empty"));
  EXPECT_THAT(errors("example.com"),
              ElementsAre("11:14: expected a sequence for \"domains\", got \"example.com\""));
  EXPECT_THAT(errors("{example.com: 1}"),
              ElementsAre("11:14: expected a sequence for \"domains\", got a map"));
  EXPECT_THAT(errors(""),
              ElementsAre("11:5: expected a sequence for \"domains\", got an empty value"));
}

TEST(AcmeConfig, Challenge) {
  // tls-alpn-01 needs a TLS listener: BASE's only listener is plain, so add one.
  std::string yaml = R"(listen:
  - {address: ":443", tls: true}
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
tls:
  acme:
    directory: "https://acme.example/directory"
    domains: [example.com]
    challenge: ${CHALLENGE}
)";
  EXPECT_EQ(load_ok(yaml, fake_env({{"CHALLENGE", "tls-alpn-01"}})).tls.acme.challenge,
            "tls-alpn-01");
  EXPECT_THAT(load_errors(yaml, fake_env({{"CHALLENGE", "dns-01"}})),
              ElementsAre("9:16: expected one of http-01, tls-alpn-01 for \"challenge\", got "
                          "\"dns-01\""));
  EXPECT_THAT(load_errors(yaml, fake_env({{"CHALLENGE", "HTTP-01"}})),
              ElementsAre("9:16: expected one of http-01, tls-alpn-01 for \"challenge\", got "
                          "\"HTTP-01\""));
  EXPECT_EQ(load_ok(with_acme(REQUIRED + "    challenge: http-01\n")).tls.acme.challenge,
            "http-01");
}

TEST(AcmeConfig, StorageAndCaBundlePaths) {
  EXPECT_EQ(load_ok(with_acme(REQUIRED + "    storage: ./acme-state\n")).tls.acme.storage,
            "./acme-state");
  EXPECT_THAT(load_errors(with_acme(REQUIRED + "    storage: \"\"\n")),
              ElementsAre("12:14: \"storage\" must not be empty"));
  // Empty means none, so that "${ACME_CA_BUNDLE:-}" can leave it out.
  EXPECT_EQ(load_ok(with_acme(REQUIRED + "    ca_bundle: \"\"\n")).tls.acme.ca_bundle, "");
  EXPECT_THAT(load_errors(with_acme(REQUIRED + "    storage:\n    ca_bundle: [a]\n")),
              ElementsAre("12:5: expected a string for \"storage\", got an empty value",
                          "13:16: expected a string for \"ca_bundle\", got a sequence"));
}

TEST(AcmeConfig, Renew) {
  auto renew = [](const std::string& value) {
    return load_ok(with_acme(REQUIRED + "    renew: " + value + "\n")).tls.acme;
  };
  Acme automatic = renew("auto");
  EXPECT_TRUE(automatic.renew_auto);
  EXPECT_EQ(automatic.renew_before, 0ms);
  Acme fixed = renew("30d");
  EXPECT_FALSE(fixed.renew_auto);
  EXPECT_EQ(fixed.renew_before, 30 * 24h);
  EXPECT_EQ(renew("12h").renew_before, 12h);
  EXPECT_EQ(renew("1ms").renew_before, 1ms);
}

TEST(AcmeConfig, BadRenew) {
  auto errors = [](const std::string& value) {
    return load_errors(with_acme(REQUIRED + "    renew: " + value + "\n"));
  };
  EXPECT_THAT(errors("0d"), ElementsAre("12:12: \"renew\" must be greater than 0"));
  EXPECT_THAT(errors("soon"),
              ElementsAre("12:12: expected \"auto\" or a duration like 30d for \"renew\": "
                          "\"soon\" does not start with a number"));
  EXPECT_THAT(errors("30"),
              ElementsAre("12:12: expected \"auto\" or a duration like 30d for \"renew\": "
                          "\"30\" has no unit (use ms, s, m, h or d)"));
  EXPECT_THAT(errors("-1d"),
              ElementsAre("12:12: expected \"auto\" or a duration like 30d for \"renew\": "
                          "\"-1d\" is negative"));
  EXPECT_THAT(errors("Auto"),
              ElementsAre("12:12: expected \"auto\" or a duration like 30d for \"renew\": "
                          "\"Auto\" does not start with a number"));
  EXPECT_THAT(errors("[30d]"),
              ElementsAre("12:12: expected \"auto\" or a duration like 30d for \"renew\", got a "
                          "sequence"));
  EXPECT_THAT(errors(""),
              ElementsAre("12:5: expected \"auto\" or a duration like 30d for \"renew\", got an "
                          "empty value"));
}

TEST(AcmeConfig, ExternalAccountBinding) {
  Acme acme = load_ok(with_acme(REQUIRED + R"(    eab_kid: "kid_0123"
    eab_hmac_key: ${EAB_KEY}
)"),
                      fake_env({{"EAB_KEY", "AAAA-_zz09"}}))
                  .tls.acme;
  EXPECT_EQ(acme.eab_kid, "kid_0123");
  EXPECT_EQ(acme.eab_hmac_key, "AAAA-_zz09");
}

TEST(AcmeConfig, ExternalAccountBindingNeedsBothKeys) {
  EXPECT_THAT(load_errors(with_acme(REQUIRED + "    eab_kid: kid-1\n")),
              ElementsAre("12:14: eab_kid is set but eab_hmac_key is not; External Account "
                          "Binding needs both"));
  EXPECT_THAT(load_errors(with_acme(REQUIRED + "    eab_hmac_key: c2VjcmV0\n")),
              ElementsAre("12:19: eab_hmac_key is set but eab_kid is not; External Account "
                          "Binding needs both"));
  // Present but empty still counts as present: the value's own error, and the pair's.
  EXPECT_THAT(load_errors(with_acme(REQUIRED + "    eab_kid:\n")),
              ElementsAre("12:5: expected a string for \"eab_kid\", got an empty value",
                          "12:5: eab_kid is set but eab_hmac_key is not; External Account "
                          "Binding needs both"));
}

TEST(AcmeConfig, BadExternalAccountBindingValues) {
  auto errors = [](const std::string& kid, const std::string& key) {
    return load_errors(
        with_acme(REQUIRED + "    eab_kid: " + kid + "\n    eab_hmac_key: " + key + "\n"));
  };
  // The HMAC key is a secret: messages never repeat it.
  const std::string not_base64url =
      "13:19: \"eab_hmac_key\" must be base64url: letters, digits, \"-\" and \"_\", without "
      "\"=\" padding";
  EXPECT_THAT(errors("kid-1", "abc+/def"), ElementsAre(not_base64url));
  EXPECT_THAT(errors("kid-1", "c2VjcmV0LWtleQ=="), ElementsAre(not_base64url));
  EXPECT_THAT(errors("kid-1", "\"abc def\""), ElementsAre(not_base64url));
  EXPECT_THAT(errors("kid-1", "abcde"),
              ElementsAre("13:19: \"eab_hmac_key\" is not valid base64url: truncated or one "
                          "character too long"));
  EXPECT_THAT(errors("kid-1", "\"\""), ElementsAre("13:19: \"eab_hmac_key\" must not be empty"));
  EXPECT_THAT(errors("\"\"", "abcd"), ElementsAre("12:14: \"eab_kid\" must not be empty"));
  EXPECT_THAT(errors("[a]", "{k: v}"),
              ElementsAre("12:14: expected a string for \"eab_kid\", got a sequence",
                          "13:19: expected a string for \"eab_hmac_key\", got a map"));
}

TEST(AcmeConfig, UnknownKeyElsewhereInTlsIsStillAnError) {
  EXPECT_THAT(load_errors(with_acme(REQUIRED) + "  ocsp: true\n"),
              ElementsAre("12:3: unknown key \"ocsp\""));
}

// Validation, through the loader: the CA must reach the challenge.

TEST(AcmeValidate, TlsListenerServedOnlyByAcme) {
  Config cfg = load_ok(R"(listen:
  - address: ":443"
    tls: true
  - address: ":80"
    redirect_https: true
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
tls:
  acme:
    directory: "https://acme.example/directory"
    domains: [example.com]
)");
  EXPECT_TRUE(cfg.listeners[0].tls);
  EXPECT_TRUE(cfg.tls.certificates.empty());
  EXPECT_THAT(cfg.tls.acme.domains, ElementsAre("example.com"));
}

TEST(AcmeValidate, Http01NeedsAPlainListener) {
  EXPECT_THAT(load_errors(R"(listen:
  - address: ":443"
    tls: true
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
tls:
  acme:
    directory: "https://acme.example/directory"
    domains: [example.com]
)"),
              ElementsAre("8:5: challenge http-01 needs a plain listener (e.g. 0.0.0.0:80) for "
                          "the CA to reach"));
}

TEST(AcmeValidate, TlsAlpn01NeedsATlsListener) {
  EXPECT_THAT(load_errors(with_acme(REQUIRED + "    challenge: tls-alpn-01\n")),
              ElementsAre("10:5: challenge tls-alpn-01 needs a TLS listener (e.g. 0.0.0.0:443 "
                          "with tls: true) for the CA to reach"));
}

TEST(AcmeValidate, MissingCaBundleIsReportedAtTheSection) {
  test::TempDir dir;
  std::string missing = dir.path() + "/missing.pem";
  EXPECT_THAT(
      load_errors(with_acme(REQUIRED + "    ca_bundle: ${CA}\n"), fake_env({{"CA", missing}})),
      ElementsAre("10:5: cannot read ca_bundle file " + missing + ": No such file or directory"));
}

TEST(AcmeValidate, ValidateIsSkippedAfterParseErrors) {
  // The listener problem would be a validation error; the parse error stops before it.
  EXPECT_THAT(load_errors(R"(listen: [{address: ":443", tls: true}]
upstreams: {app: {servers: ["a:1"]}}
routes: [{upstream: app}]
tls:
  acme: {directory: "https://acme.example/directory", domains: [a.example], renew: never}
)"),
              ElementsAre("5:84: expected \"auto\" or a duration like 30d for \"renew\": "
                          "\"never\" does not start with a number"));
}

// Validation of configs built in code.

// valid_config() with ACME on for example.com, its section at 9:5.
Config with_acme_config() {
  Config cfg = valid_config();
  cfg.tls.acme_enabled = true;
  cfg.tls.acme.directory = "https://acme.example/directory";
  cfg.tls.acme.domains = {"example.com"};
  cfg.tls.acme.mark = {9, 5};
  return cfg;
}

Listener tls_listener(const std::string& address, uint16_t port, Mark mark) {
  Listener listener;
  listener.address = address;
  listener.endpoint = HostPort{"0.0.0.0", port};
  listener.tls = true;
  listener.mark = mark;
  return listener;
}

std::vector<std::string> validate_errors(const Config& cfg) {
  std::vector<Diagnostic> diagnostics;
  validate(cfg, &diagnostics);
  std::vector<std::string> out;
  for (const Diagnostic& d : diagnostics) {
    EXPECT_EQ(d.file, cfg.source);
    out.push_back(std::to_string(d.line) + ":" + std::to_string(d.col) + ": " + d.message);
  }
  EXPECT_EQ(ERR_peek_error(), 0u) << "validate left errors on the OpenSSL error queue";
  return out;
}

TEST(AcmeValidate, ValidConfigs) {
  EXPECT_THAT(validate_errors(with_acme_config()), IsEmpty());
  Config both = with_acme_config();
  both.listeners.push_back(tls_listener("0.0.0.0:8443", 8443, {3, 5}));
  EXPECT_THAT(validate_errors(both), IsEmpty());
  both.tls.acme.challenge = "tls-alpn-01";
  EXPECT_THAT(validate_errors(both), IsEmpty());
}

TEST(AcmeValidate, TlsListenerNeedsCertificatesOrAcmeDomains) {
  Config cfg = with_acme_config();
  cfg.listeners.push_back(tls_listener("0.0.0.0:8443", 8443, {3, 5}));
  cfg.tls.acme.domains.clear();
  EXPECT_THAT(validate_errors(cfg), ElementsAre("3:5: listener 0.0.0.0:8443 has tls: true but "
                                                "tls.certificates and tls.acme.domains are empty"));
  // Domains without the section turned on serve nothing.
  cfg.tls.acme.domains = {"example.com"};
  cfg.tls.acme_enabled = false;
  EXPECT_THAT(
      validate_errors(cfg),
      ElementsAre("3:5: listener 0.0.0.0:8443 has tls: true but tls.certificates is empty"));
}

TEST(AcmeValidate, ChallengeListeners) {
  Config tls_only = with_acme_config();
  tls_only.listeners[0].tls = true;
  EXPECT_THAT(validate_errors(tls_only),
              ElementsAre("9:5: challenge http-01 needs a plain listener (e.g. 0.0.0.0:80) for "
                          "the CA to reach"));
  Config plain_only = with_acme_config();
  plain_only.tls.acme.challenge = "tls-alpn-01";
  EXPECT_THAT(validate_errors(plain_only),
              ElementsAre("9:5: challenge tls-alpn-01 needs a TLS listener (e.g. 0.0.0.0:443 with "
                          "tls: true) for the CA to reach"));
  // A redirecting listener is plain, and serves /.well-known/acme-challenge/.
  Config redirect = with_acme_config();
  redirect.listeners[0].redirect_https = true;
  EXPECT_THAT(validate_errors(redirect), IsEmpty());
}

TEST(AcmeValidate, NoListenersIsReportedOnce) {
  Config cfg = with_acme_config();
  cfg.listeners.clear();
  EXPECT_THAT(validate_errors(cfg), ElementsAre("0:0: at least one listener is required"));
}

TEST(AcmeValidate, DisabledSectionIsNotChecked) {
  Config cfg = with_acme_config();
  cfg.tls.acme_enabled = false;
  cfg.tls.acme.challenge = "tls-alpn-01";
  cfg.tls.acme.ca_bundle = "/nonexistent/ca.pem";
  EXPECT_THAT(validate_errors(cfg), IsEmpty());
}

// ca_bundle files written at test time.
class AcmeCaBundle : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = test::make_key();
    ca_ = test::make_certificate(key_.get(), "Test Root");
  }

  std::vector<std::string> check(const std::string& path) {
    Config cfg = with_acme_config();
    cfg.tls.acme.ca_bundle = path;
    return validate_errors(cfg);
  }

  test::TempDir dir_;
  fd::ossl::PkeyPtr key_;
  fd::ossl::X509Ptr ca_;
};

TEST_F(AcmeCaBundle, OneCertificate) {
  EXPECT_THAT(check(dir_.write("ca.pem", test::to_pem(ca_.get()))), IsEmpty());
}

TEST_F(AcmeCaBundle, SeveralCertificatesWithTextBetween) {
  auto other_key = test::make_key();
  auto other = test::make_certificate(other_key.get(), "Other Root");
  std::string bundle = "# Test Root\n" + test::to_pem(ca_.get()) + "\n# Other Root\n" +
                       test::to_pem(other.get()) + "\n";
  EXPECT_THAT(check(dir_.write("bundle.pem", bundle)), IsEmpty());
}

TEST_F(AcmeCaBundle, KeyBlocksAreSkipped) {
  std::string mixed = test::to_pem(key_.get()) + test::to_pem(ca_.get());
  EXPECT_THAT(check(dir_.write("mixed.pem", mixed)), IsEmpty());
}

TEST_F(AcmeCaBundle, MissingFile) {
  std::string missing = dir_.path() + "/missing.pem";
  EXPECT_THAT(check(missing), ElementsAre("9:5: cannot read ca_bundle file " + missing +
                                          ": No such file or directory"));
}

TEST_F(AcmeCaBundle, DirectoryIsNotAFile) {
  EXPECT_THAT(check(dir_.path()),
              ElementsAre("9:5: cannot read ca_bundle file " + dir_.path() + ": Is a directory"));
}

TEST_F(AcmeCaBundle, NoCertificate) {
  std::string text = dir_.write("notes.txt", "hello\n");
  std::string empty = dir_.write("empty.pem", "");
  std::string key_only = dir_.write("key.pem", test::to_pem(key_.get()));
  EXPECT_THAT(check(text), ElementsAre("9:5: cannot parse ca_bundle file " + text +
                                       ": no PEM certificate found"));
  EXPECT_THAT(check(empty), ElementsAre("9:5: cannot parse ca_bundle file " + empty +
                                        ": no PEM certificate found"));
  EXPECT_THAT(check(key_only), ElementsAre("9:5: cannot parse ca_bundle file " + key_only +
                                           ": no PEM certificate found"));
}

TEST_F(AcmeCaBundle, CorruptCertificate) {
  std::string corrupt =
      dir_.write("bad.pem", test::to_pem(ca_.get()) +
                                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_THAT(check(corrupt),
              ElementsAre(StartsWith("9:5: cannot parse ca_bundle file " + corrupt + ": ")));
}

}  // namespace
}  // namespace fd::config
