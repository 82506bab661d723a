#include "acme/client.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/ossl.h"
#include "tests/unit/acme/fake_http_client.h"

namespace fd::acme {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using test::decode_jws;
using test::DecodedJws;
using test::FakeHttpClient;

constexpr char DIRECTORY[] = "https://ca.test/dir";
constexpr char NEW_NONCE[] = "https://ca.test/nonce-plz";
constexpr char NEW_ACCOUNT[] = "https://ca.test/sign-me-up";
constexpr char NEW_ORDER[] = "https://ca.test/order-plz";
constexpr char RENEWAL_INFO[] = "https://ca.test/renewal-info";
constexpr char ACCOUNT[] = "https://ca.test/my-account/1";
constexpr char ORDER[] = "https://ca.test/my-order/7";
constexpr char AUTHZ[] = "https://ca.test/authZ/a1";
constexpr char AUTHZ2[] = "https://ca.test/authZ/a2";
constexpr char CHALLENGE[] = "https://ca.test/chalZ/c1";
constexpr char CHALLENGE2[] = "https://ca.test/chalZ/c2";
constexpr char FINALIZE[] = "https://ca.test/finalize-order/7";
constexpr char CERTIFICATE[] = "https://ca.test/certZ/99";
constexpr char CHAIN[] =
    "-----BEGIN CERTIFICATE-----\nMIIBleaf\n-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\nMIIBintermediate\n-----END CERTIFICATE-----\n";
constexpr char PROBLEM[] = "application/problem+json";

json directory(bool ari = false, bool eab_required = false) {
  json dir = {{"newNonce", NEW_NONCE},
              {"newAccount", NEW_ACCOUNT},
              {"newOrder", NEW_ORDER},
              {"revokeCert", "https://ca.test/revoke-cert"},
              {"keyChange", "https://ca.test/rollover-account-key"},
              {"meta",
               {{"termsOfService", "data:text/plain,Do%20what%20thou%20wilt"},
                {"externalAccountRequired", eab_required}}}};
  if (ari) {
    dir["renewalInfo"] = RENEWAL_INFO;
  }
  return dir;
}

json problem(const std::string& type, const std::string& detail, int status) {
  return {{"type", "urn:ietf:params:acme:error:" + type}, {"detail", detail}, {"status", status}};
}

json authorization(const std::string& name, const std::string& status,
                   const std::string& challenge_url = CHALLENGE,
                   const std::string& token = "tok-1") {
  return {
      {"status", status},
      {"identifier", {{"type", "dns"}, {"value", name}}},
      {"expires", "2030-01-01T00:00:00Z"},
      {"challenges",
       {{{"type", "dns-01"},
         {"url", challenge_url + "/dns"},
         {"token", token},
         {"status", "pending"}},
        {{"type", "tls-alpn-01"},
         {"url", challenge_url + "/alpn"},
         {"token", token},
         {"status", "pending"}},
        {{"type", "http-01"}, {"url", challenge_url}, {"token", token}, {"status", "pending"}}}}};
}

json order(const std::string& status, std::vector<std::string> authzs = {AUTHZ}) {
  json o = {{"status", status},
            {"expires", "2030-01-01T00:00:00Z"},
            {"identifiers", {{{"type", "dns"}, {"value", "a.test"}}}},
            {"authorizations", authzs},
            {"finalize", FINALIZE}};
  if (status == "valid") {
    o["certificate"] = CERTIFICATE;
  }
  return o;
}

// Records what the client asks of the challenge responder, and how many HTTP requests had been
// sent at that moment.
class FakeResponder : public ChallengeResponder {
 public:
  struct Event {
    std::string op;
    std::string key;
    std::string value;  // key authorization, or the tls-alpn-01 certificate PEM
    size_t requests_before = 0;
  };

  explicit FakeResponder(const FakeHttpClient& http) : http_(http) {}

  void add_http01(const std::string& token, const std::string& key_authorization) override {
    events.push_back({"add_http01", token, key_authorization, http_.requests().size()});
  }
  void remove_http01(const std::string& token) override {
    events.push_back({"remove_http01", token, "", http_.requests().size()});
  }
  void add_tls_alpn01(const std::string& name, const ChallengeCertificate& cert) override {
    events.push_back({"add_tls_alpn01", name, cert.cert_pem, http_.requests().size()});
  }
  void remove_tls_alpn01(const std::string& name) override {
    events.push_back({"remove_tls_alpn01", name, "", http_.requests().size()});
  }

  std::vector<Event> events;

 private:
  const FakeHttpClient& http_;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto account = EcKey::generate();
    auto cert = EcKey::generate();
    ASSERT_TRUE(account && cert);
    account_key_.emplace(std::move(*account));
    cert_key_.emplace(std::move(*cert));
  }

  ClientOptions options() {
    ClientOptions o;
    o.directory_url = DIRECTORY;
    o.email = "ops@example.test";
    o.sleep = [this](milliseconds d) { sleeps_.push_back(d); };
    return o;
  }

  // The directory and newAccount; |fetch_nonce| when no nonce is cached yet.
  void script_account(const json& dir = directory(), const std::string& account = ACCOUNT,
                      bool fetch_nonce = true) {
    http_.expect_json("GET", DIRECTORY, 200, dir);
    if (fetch_nonce) {
      http_.expect("HEAD", NEW_NONCE, 200);
    }
    http_.expect_json("POST", NEW_ACCOUNT, 201, {{"status", "valid"}, {"contact", json::array()}},
                      {{"location", account}, {"link", "<https://ca.test/dir>;rel=\"index\""}});
  }

  // Finalize answered "valid" at once, then the download.
  void script_finalize_and_download() {
    http_.expect_json("POST", ORDER, 200, order("ready"));
    http_.expect_json("POST", FINALIZE, 200, order("valid"), {{"location", ORDER}});
    http_.expect("POST", CERTIFICATE, 200, CHAIN,
                 {{"content-type", "application/pem-certificate-chain"},
                  {"link", "<https://ca.test/certZ/99/1>;rel=\"alternate\""},
                  {"link", "<https://ca.test/dir>;rel=\"index\""}});
  }

  std::vector<DecodedJws> posts() const {
    std::vector<DecodedJws> out;
    for (const auto& request : http_.requests()) {
      if (request.method == "POST") {
        out.push_back(decode_jws(request.body));
      }
    }
    return out;
  }

  // Every POST carries the nonce of the latest answer before it, and no nonce is used twice.
  void expect_nonce_chain() const {
    std::string last;
    std::vector<std::string> used;
    for (const auto& request : http_.requests()) {
      if (request.method == "POST") {
        auto jws = decode_jws(request.body);
        std::string nonce = jws.protected_header.value("nonce", "");
        EXPECT_EQ(nonce, last) << request.url;
        EXPECT_EQ(std::count(used.begin(), used.end(), nonce), 0) << nonce;
        used.push_back(nonce);
      }
      if (!request.answered_nonce.empty()) {
        last = request.answered_nonce;
      }
    }
  }

  FakeHttpClient http_;
  std::optional<EcKey> account_key_;
  std::optional<EcKey> cert_key_;
  std::vector<milliseconds> sleeps_;
};

TEST_F(ClientTest, Http01HappyPath) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"));
  http_.expect_json("POST", CHALLENGE, 200,
                    {{"type", "http-01"}, {"status", "pending"}, {"token", "tok-1"}},
                    {{"link", "<https://ca.test/authZ/a1>;rel=\"up\""},
                     {"link", "<https://ca.test/dir>;rel=\"index\""}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"));
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "valid"));
  http_.expect_json("POST", ORDER, 200, order("ready"));
  http_.expect_json("POST", FINALIZE, 200, order("processing"));
  http_.expect_json("POST", ORDER, 200, order("processing"));
  http_.expect_json("POST", ORDER, 200, order("valid"));
  http_.expect("POST", CERTIFICATE, 200, CHAIN,
               {{"content-type", "application/pem-certificate-chain"}});

  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account()) << client.ensure_account().error().message;
  EXPECT_EQ(client.account_url(), ACCOUNT);
  EXPECT_FALSE(client.has_renewal_info());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(*chain, CHAIN);
  EXPECT_EQ(http_.remaining(), 0u);

  // Request line by line.
  const auto& requests = http_.requests();
  ASSERT_EQ(requests.size(), 13u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[1].method, "HEAD");
  for (size_t i = 2; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].method, "POST");
    EXPECT_EQ(requests[i].content_type, "application/jose+json") << i;
  }
  expect_nonce_chain();

  auto jws = posts();
  ASSERT_EQ(jws.size(), 11u);
  for (size_t i = 0; i < jws.size(); ++i) {
    const json& header = jws[i].protected_header;
    EXPECT_EQ(header.value("alg", ""), "ES256");
    EXPECT_EQ(header.value("url", ""), requests[i + 2].url);
    EXPECT_FALSE(jws[i].outer.contains("header"));
    EXPECT_EQ(jws[i].outer["signature"].get<std::string>().find('='), std::string::npos);
    if (i == 0) {
      EXPECT_EQ(header["jwk"], account_key_->jwk());
      EXPECT_FALSE(header.contains("kid"));
    } else {
      EXPECT_EQ(header.value("kid", ""), ACCOUNT) << i;
      EXPECT_FALSE(header.contains("jwk")) << i;
    }
  }
  json account = json::parse(jws[0].payload);
  EXPECT_EQ(account["termsOfServiceAgreed"], true);
  EXPECT_EQ(account["contact"], json::array({"mailto:ops@example.test"}));
  EXPECT_FALSE(account.contains("externalAccountBinding"));
  json new_order = json::parse(jws[1].payload);
  EXPECT_EQ(new_order["identifiers"], json::parse(R"([{"type":"dns","value":"a.test"}])"));
  EXPECT_FALSE(new_order.contains("replaces"));
  EXPECT_EQ(jws[2].payload, "");    // authorization: POST-as-GET
  EXPECT_EQ(jws[3].payload, "{}");  // challenge trigger
  EXPECT_EQ(jws[4].payload, "");
  EXPECT_EQ(jws[5].payload, "");
  EXPECT_EQ(jws[6].payload, "");  // order poll
  json finalize = json::parse(jws[7].payload);
  auto csr = base64url_decode(finalize["csr"].get<std::string>());
  ASSERT_TRUE(csr);
  EXPECT_EQ(static_cast<unsigned char>((*csr)[0]), 0x30);  // a DER SEQUENCE
  EXPECT_EQ(jws[10].payload, "");                          // certificate download: POST-as-GET

  // The answer was up before the trigger and gone before the order was polled again.
  ASSERT_EQ(responder.events.size(), 2u);
  EXPECT_EQ(responder.events[0].op, "add_http01");
  EXPECT_EQ(responder.events[0].key, "tok-1");
  EXPECT_EQ(responder.events[0].value, "tok-1." + account_key_->thumbprint());
  EXPECT_EQ(responder.events[0].requests_before, 5u);  // before the challenge POST
  EXPECT_EQ(responder.events[1].op, "remove_http01");
  EXPECT_EQ(responder.events[1].key, "tok-1");
  EXPECT_EQ(responder.events[1].requests_before, 8u);  // before the order poll

  // No Retry-After: the default poll interval, once for the authorization, twice for the order
  // (after the finalize answer, and after the first "processing" poll).
  EXPECT_EQ(sleeps_, std::vector<milliseconds>(3, milliseconds(500)));
}

TEST_F(ClientTest, BadNonceIsRetriedWithTheNonceFromTheErrorResponse) {
  http_.expect_json("GET", DIRECTORY, 200, directory());
  http_.expect("HEAD", NEW_NONCE, 200, "", {{"replay-nonce", "first"}});
  http_.expect_json("POST", NEW_ACCOUNT, 400,
                    problem("badNonce", "JWS has an invalid anti-replay nonce", 400),
                    {{"replay-nonce", "from-the-error"}, {"content-type", PROBLEM}});
  http_.expect_json("POST", NEW_ACCOUNT, 200, {{"status", "valid"}}, {{"location", ACCOUNT}});

  Client client(http_, *account_key_, options());
  auto result = client.ensure_account();
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(http_.requests().size(), 4u);  // no second HEAD
  EXPECT_EQ(decode_jws(http_.requests()[2].body).protected_header["nonce"], "first");
  EXPECT_EQ(decode_jws(http_.requests()[3].body).protected_header["nonce"], "from-the-error");
  EXPECT_EQ(client.account_url(), ACCOUNT);
}

TEST_F(ClientTest, BadNonceGivesUpAfterFiveRetries) {
  http_.expect_json("GET", DIRECTORY, 200, directory());
  http_.expect("HEAD", NEW_NONCE, 200);
  for (int i = 0; i < 6; ++i) {
    http_.expect_json("POST", NEW_ACCOUNT, 400, problem("badNonce", "bad nonce", 400),
                      {{"content-type", PROBLEM}});
  }
  Client client(http_, *account_key_, options());
  auto result = client.ensure_account();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::protocol);
  EXPECT_NE(result.error().message.find("urn:ietf:params:acme:error:badNonce: bad nonce"),
            std::string::npos);
  EXPECT_EQ(http_.remaining(), 0u);
  expect_nonce_chain();
}

TEST_F(ClientTest, MissingNonceIsFetchedAgainAfterATransportError) {
  script_account();
  http_.expect_transport_error("POST", NEW_ORDER);
  http_.expect("HEAD", NEW_NONCE, 200, "", {{"replay-nonce", "fresh"}});
  http_.expect_json("POST", NEW_ORDER, 400, problem("rejectedIdentifier", "no", 400));
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto first =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, Errc::io);
  auto second =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(second);
  EXPECT_EQ(decode_jws(http_.requests().back().body).protected_header["nonce"], "fresh");
}

TEST_F(ClientTest, ProblemDocumentBecomesTypeAndDetail) {
  script_account();
  json rejected =
      problem("rejectedIdentifier", "Error creating new order :: Cannot issue for \"a.test\"", 400);
  rejected["subproblems"] = {{{"type", "urn:ietf:params:acme:error:rejectedIdentifier"},
                              {"detail", "Domain name is an IANA reserved name"},
                              {"identifier", {{"type", "dns"}, {"value", "a.test"}}}}};
  http_.expect_json("POST", NEW_ORDER, 400, rejected, {{"content-type", PROBLEM}});
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().code, Errc::protocol);
  const std::string& message = chain.error().message;
  EXPECT_EQ(message.rfind("urn:ietf:params:acme:error:rejectedIdentifier: Error creating new order "
                          ":: Cannot issue for \"a.test\"",
                          0),
            0u)
      << message;
  EXPECT_NE(message.find("HTTP 400"), std::string::npos) << message;
  EXPECT_NE(message.find("a.test: urn:ietf:params:acme:error:rejectedIdentifier: Domain name is"),
            std::string::npos)
      << message;
  EXPECT_TRUE(responder.events.empty());
}

TEST_F(ClientTest, NotFoundWithEmptyBody) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"), {{"location", ORDER}});
  http_.expect("POST", AUTHZ, 404, "");
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().code, Errc::protocol);
  EXPECT_EQ(chain.error().message, "authorization: HTTP 404");
}

TEST_F(ClientTest, InvalidAuthorizationReportsTheChallengeErrorAndRemovesTheAnswer) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"));
  http_.expect_json("POST", CHALLENGE, 200, {{"type", "http-01"}, {"status", "pending"}});
  json invalid = authorization("a.test", "invalid");
  invalid["challenges"][2]["status"] = "invalid";
  invalid["challenges"][2]["error"] =
      problem("unauthorized",
              "The key authorization file from the server did not match this challenge", 403);
  http_.expect_json("POST", AUTHZ, 200, invalid);

  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().code, Errc::protocol);
  EXPECT_EQ(chain.error().message,
            "authorization for a.test is invalid: urn:ietf:params:acme:error:unauthorized: The key "
            "authorization file from the server did not match this challenge");
  ASSERT_EQ(responder.events.size(), 2u);
  EXPECT_EQ(responder.events[1].op, "remove_http01");
  EXPECT_EQ(responder.events[1].key, "tok-1");
  EXPECT_EQ(http_.remaining(), 0u);  // no finalize
}

TEST_F(ClientTest, RetryAfterIsHonouredAndCapped) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"));
  http_.expect_json("POST", CHALLENGE, 200, {{"type", "http-01"}, {"status", "processing"}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"), {{"retry-after", "3"}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"),
                    {{"retry-after", "Fri, 31 Dec 2099 23:59:59 GMT"}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"),
                    {{"retry-after", "not a date"}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "valid"));
  http_.expect_json("POST", ORDER, 200, order("ready"));
  http_.expect_json("POST", FINALIZE, 200, order("processing"), {{"retry-after", "1"}});
  http_.expect_json("POST", ORDER, 200, order("processing"), {{"retry-after", "2"}});
  http_.expect_json("POST", ORDER, 200, order("valid"));
  http_.expect("POST", CERTIFICATE, 200, CHAIN);

  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_TRUE(chain) << chain.error().message;
  // 3 s as asked; a date in 2099 capped at 10 s; garbage falls back to the default; then what
  // the finalize answer and the order poll said.
  EXPECT_EQ(sleeps_,
            std::vector<milliseconds>({milliseconds(3000), milliseconds(10000), milliseconds(500),
                                       milliseconds(1000), milliseconds(2000)}));
}

TEST_F(ClientTest, OrderTimesOutAndStillRemovesTheAnswer) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"));
  http_.expect_json("POST", CHALLENGE, 200, {{"type", "http-01"}, {"status", "pending"}});
  // 2 s with 500 ms polls: four waits, then the fifth pending answer ends it.
  for (int i = 0; i < 5; ++i) {
    http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "pending"));
  }
  ClientOptions o = options();
  o.order_timeout = std::chrono::seconds(2);
  Client client(http_, *account_key_, o);
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().code, Errc::timeout);
  EXPECT_EQ(sleeps_.size(), 4u);
  ASSERT_EQ(responder.events.size(), 2u);
  EXPECT_EQ(responder.events[1].op, "remove_http01");
  EXPECT_EQ(http_.remaining(), 0u);
}

TEST_F(ClientTest, AccountDoesNotExistRegistersAgainOnce) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 400,
                    problem("accountDoesNotExist", "unable to find existing account", 400),
                    {{"content-type", PROBLEM}});
  http_.expect_json("POST", NEW_ACCOUNT, 201, {{"status", "valid"}},
                    {{"location", "https://ca.test/my-account/2"}});
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "valid"));  // reused authz
  script_finalize_and_download();

  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(client.account_url(), "https://ca.test/my-account/2");
  auto jws = posts();
  ASSERT_EQ(jws.size(), 8u);
  EXPECT_EQ(jws[1].protected_header["kid"], ACCOUNT);
  EXPECT_TRUE(jws[2].protected_header.contains("jwk"));  // the new registration
  for (size_t i = 3; i < jws.size(); ++i) {
    EXPECT_EQ(jws[i].protected_header["kid"], "https://ca.test/my-account/2") << i;
  }
  EXPECT_TRUE(responder.events.empty());  // the valid authorization needed no challenge
  expect_nonce_chain();
}

TEST_F(ClientTest, AccountDoesNotExistTwiceIsAnError) {
  script_account();
  json gone = problem("accountDoesNotExist", "unable to find existing account", 400);
  http_.expect_json("POST", NEW_ORDER, 400, gone);
  http_.expect_json("POST", NEW_ACCOUNT, 201, {{"status", "valid"}}, {{"location", ACCOUNT}});
  http_.expect_json("POST", NEW_ORDER, 400, gone);
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_NE(chain.error().message.find("accountDoesNotExist"), std::string::npos);
  EXPECT_EQ(http_.remaining(), 0u);
}

TEST_F(ClientTest, OrderWithoutEnsureAccountRegistersFirst) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("ready"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "valid"));
  script_finalize_and_download();
  Client client(http_, *account_key_, options());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(client.account_url(), ACCOUNT);
}

TEST_F(ClientTest, ExternalAccountBindingInNewAccount) {
  script_account(directory(false, true));
  ClientOptions o = options();
  o.email.clear();
  o.eab_kid = "kid-1";
  o.eab_hmac_key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
  Client client(http_, *account_key_, o);
  auto result = client.ensure_account();
  ASSERT_TRUE(result) << result.error().message;
  auto jws = posts();
  ASSERT_EQ(jws.size(), 1u);
  json payload = json::parse(jws[0].payload);
  EXPECT_EQ(payload["termsOfServiceAgreed"], true);
  EXPECT_FALSE(payload.contains("contact"));
  ASSERT_TRUE(payload.contains("externalAccountBinding"));
  auto eab = decode_jws(payload["externalAccountBinding"].dump());
  EXPECT_EQ(eab.protected_header["alg"], "HS256");
  EXPECT_EQ(eab.protected_header["kid"], "kid-1");
  EXPECT_EQ(eab.protected_header["url"], NEW_ACCOUNT);
  EXPECT_EQ(json::parse(eab.payload), account_key_->jwk());
}

TEST_F(ClientTest, ExternalAccountBindingRequiredButMissing) {
  http_.expect_json("GET", DIRECTORY, 200, directory(false, true));
  Client client(http_, *account_key_, options());
  auto result = client.ensure_account();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  EXPECT_EQ(http_.requests().size(), 1u);  // nothing signed
}

TEST_F(ClientTest, ExternalAccountBindingNeedsBothParts) {
  ClientOptions o = options();
  o.eab_kid = "kid-1";
  Client client(http_, *account_key_, o);
  auto result = client.ensure_account();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::invalid_argument);
  EXPECT_TRUE(http_.requests().empty());
}

// The SAN dNSName entries and the acmeIdentifier extension's value of |pem|.
struct AlpnCert {
  std::vector<std::string> names;
  bool critical = false;
  std::string acme_identifier;  // the extension's DER value
};

AlpnCert inspect_alpn_cert(const std::string& pem) {
  AlpnCert out;
  ossl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ADD_FAILURE() << "no certificate in " << pem;
    return out;
  }
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type == GEN_DNS) {
      const ASN1_IA5STRING* dns = name->d.dNSName;
      out.names.emplace_back(reinterpret_cast<const char*>(dns->data),
                             static_cast<size_t>(dns->length));
    }
  }
  GENERAL_NAMES_free(sans);
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  int index = X509_get_ext_by_OBJ(cert.get(), oid, -1);
  ASN1_OBJECT_free(oid);
  if (index >= 0) {
    X509_EXTENSION* ext = X509_get_ext(cert.get(), index);
    out.critical = X509_EXTENSION_get_critical(ext) == 1;
    const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
    out.acme_identifier.assign(reinterpret_cast<const char*>(data->data),
                               static_cast<size_t>(data->length));
  }
  return out;
}

TEST_F(ClientTest, TlsAlpn01PresentsACertificateForTheIdentifier) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending", {AUTHZ, AUTHZ2}),
                    {{"location", ORDER}});
  // Identifiers come back in any order: the name is taken from each authorization.
  http_.expect_json("POST", AUTHZ, 200, authorization("b.test", "pending", CHALLENGE, "tok-b"));
  http_.expect_json("POST", std::string(CHALLENGE) + "/alpn", 200,
                    {{"type", "tls-alpn-01"}, {"status", "valid"}});
  http_.expect_json("POST", AUTHZ, 200, authorization("b.test", "valid", CHALLENGE, "tok-b"));
  http_.expect_json("POST", AUTHZ2, 200, authorization("a.test", "pending", CHALLENGE2, "tok-a"));
  http_.expect_json("POST", std::string(CHALLENGE2) + "/alpn", 200,
                    {{"type", "tls-alpn-01"}, {"status", "pending"}});
  http_.expect_json("POST", AUTHZ2, 200, authorization("a.test", "valid", CHALLENGE2, "tok-a"));
  script_finalize_and_download();

  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain = client.order_certificate({"a.test", "b.test"}, ChallengeType::tls_alpn01, *cert_key_,
                                        responder, "");
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(sleeps_.size(), 0u);

  ASSERT_EQ(responder.events.size(), 4u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"add_tls_alpn01", "b.test"},
      {"remove_tls_alpn01", "b.test"},
      {"add_tls_alpn01", "a.test"},
      {"remove_tls_alpn01", "a.test"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(responder.events[i].op, expected[i].first);
    EXPECT_EQ(responder.events[i].key, expected[i].second);
  }
  AlpnCert cert = inspect_alpn_cert(responder.events[0].value);
  EXPECT_EQ(cert.names, std::vector<std::string>({"b.test"}));
  EXPECT_TRUE(cert.critical);
  std::string key_authz = "tok-b." + account_key_->thumbprint();
  unsigned char digest[32];
  ASSERT_EQ(EVP_Digest(key_authz.data(), key_authz.size(), digest, nullptr, EVP_sha256(), nullptr),
            1);
  std::string expected_value = std::string("\x04\x20", 2) +
                               std::string(reinterpret_cast<const char*>(digest), sizeof digest);
  EXPECT_EQ(cert.acme_identifier, expected_value);

  json new_order = json::parse(posts()[1].payload);
  EXPECT_EQ(new_order["identifiers"],
            json::parse(R"([{"type":"dns","value":"a.test"},{"type":"dns","value":"b.test"}])"));
}

TEST_F(ClientTest, WantedChallengeTypeMissing) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"), {{"location", ORDER}});
  json authz = authorization("a.test", "pending");
  authz["challenges"].erase(2);  // no http-01
  http_.expect_json("POST", AUTHZ, 200, authz);
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().message, "the CA offers no http-01 challenge for a.test");
  EXPECT_TRUE(responder.events.empty());
}

TEST_F(ClientTest, InvalidOrderAfterFinalize) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("ready"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "valid"));
  http_.expect_json("POST", ORDER, 200, order("ready"));
  http_.expect_json("POST", FINALIZE, 200, order("processing"));
  json invalid = order("invalid");
  invalid["error"] = problem("badCSR", "CSR contains a forbidden name", 400);
  http_.expect_json("POST", ORDER, 200, invalid);
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().message, std::string("order ") + ORDER +
                                       " is invalid: urn:ietf:params:acme:error:badCSR: CSR "
                                       "contains a forbidden name");
}

TEST_F(ClientTest, NewOrderWithoutLocationIsAnError) {
  script_account();
  http_.expect_json("POST", NEW_ORDER, 201, order("pending"));
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "");
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().message, "newOrder: no Location header");
}

TEST_F(ClientTest, ReplacesIsSentOnlyToACaWithRenewalInfo) {
  script_account(directory(true));
  http_.expect_json("POST", NEW_ORDER, 201, order("ready"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "valid"));
  script_finalize_and_download();
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  EXPECT_TRUE(client.has_renewal_info());
  FakeResponder responder(http_);
  ASSERT_TRUE(client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder,
                                       "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
  EXPECT_EQ(json::parse(posts()[1].payload)["replaces"], "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");

  // Same without renewalInfo in the directory: no "replaces".
  FakeHttpClient http2;
  http2.expect_json("GET", DIRECTORY, 200, directory(false));
  http2.expect("HEAD", NEW_NONCE, 200);
  http2.expect_json("POST", NEW_ACCOUNT, 200, {{"status", "valid"}}, {{"location", ACCOUNT}});
  http2.expect_json("POST", NEW_ORDER, 400, problem("malformed", "stop here", 400));
  Client client2(http2, *account_key_, options());
  ASSERT_TRUE(client2.ensure_account());
  ASSERT_FALSE(client2.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder,
                                         "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
  json payload = json::parse(decode_jws(http2.requests()[3].body).payload);
  EXPECT_FALSE(payload.contains("replaces"));
}

TEST_F(ClientTest, AlreadyReplacedOrdersWithoutReplaces) {
  script_account(directory(true));
  http_.expect_json("POST", NEW_ORDER, 409,
                    problem("alreadyReplaced", "certificate already replaced", 409));
  http_.expect_json("POST", NEW_ORDER, 201, order("ready"), {{"location", ORDER}});
  http_.expect_json("POST", AUTHZ, 200, authorization("a.test", "valid"));
  script_finalize_and_download();
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  FakeResponder responder(http_);
  auto chain =
      client.order_certificate({"a.test"}, ChallengeType::http01, *cert_key_, responder, "old.id");
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_TRUE(json::parse(posts()[1].payload).contains("replaces"));
  EXPECT_FALSE(json::parse(posts()[2].payload).contains("replaces"));
}

TEST_F(ClientTest, DirectoryErrors) {
  http_.expect("GET", DIRECTORY, 200, "<html>not json</html>");
  http_.expect_json("GET", DIRECTORY, 200, {{"newNonce", NEW_NONCE}});
  http_.expect_transport_error("GET", DIRECTORY);
  Client client(http_, *account_key_, options());
  auto not_json = client.ensure_account();
  ASSERT_FALSE(not_json);
  EXPECT_EQ(not_json.error().message, "directory: response is not a JSON object");
  auto incomplete = client.ensure_account();
  ASSERT_FALSE(incomplete);
  EXPECT_EQ(incomplete.error().code, Errc::protocol);
  auto transport = client.ensure_account();
  ASSERT_FALSE(transport);
  EXPECT_EQ(transport.error().code, Errc::io);
}

// --- ARI -----------------------------------------------------------------------------------

std::string pem_of(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// A self-signed certificate with serial |serial_hex| and, when |key_id| is non-empty, an
// authority key identifier holding it.
std::string make_cert(const std::string& serial_hex, const std::string& key_id) {
  ossl::PkeyPtr key(EVP_EC_gen("P-256"));
  ossl::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  BIGNUM* serial = nullptr;
  BN_hex2bn(&serial, serial_hex.c_str());
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("leaf.test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  if (!key_id.empty()) {
    AUTHORITY_KEYID* akid = AUTHORITY_KEYID_new();
    akid->keyid = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(akid->keyid, reinterpret_cast<const unsigned char*>(key_id.data()),
                          static_cast<int>(key_id.size()));
    X509_add1_ext_i2d(cert.get(), NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT);
    AUTHORITY_KEYID_free(akid);
  }
  X509_sign(cert.get(), key.get(), EVP_sha256());
  return pem_of(cert.get());
}

// The example of RFC 9773 4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:
// DE:01:C8:D4 and serial 0x87654321 give "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
const std::string RFC_KEY_ID(
    "\x69\x88\x5B\x6B\x87\x46\x40\x41\xE1\xB3\x7B\x84\x7B\xA0\xAE\x2C\xDE\x01\xC8\xD4", 20);

TEST(RenewalIdTest, MatchesTheRfc9773Example) {
  std::string chain = make_cert("87654321", RFC_KEY_ID) + make_cert("01", "other-issuer-key-id");
  auto id = Client::renewal_id(chain);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
}

TEST(RenewalIdTest, SerialWithoutHighBitHasNoLeadingZero) {
  auto id = Client::renewal_id(make_cert("0102", RFC_KEY_ID));
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AQI");
}

TEST(RenewalIdTest, Errors) {
  EXPECT_FALSE(Client::renewal_id("no pem here"));
  auto no_aki = Client::renewal_id(make_cert("01", ""));
  ASSERT_FALSE(no_aki);
  EXPECT_EQ(no_aki.error().code, Errc::invalid_argument);
}

TEST_F(ClientTest, RenewalInfo) {
  script_account(directory(true));
  http_.expect_json("GET", std::string(RENEWAL_INFO) + "/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", 200,
                    {{"suggestedWindow",
                      {{"start", "2025-01-02T04:00:00Z"}, {"end", "2025-01-03T04:00:00.5+01:00"}}},
                     {"explanationURL", "https://ca.test/docs/ari"}},
                    {{"retry-after", "3600"}});
  http_.expect_json("GET", std::string(RENEWAL_INFO) + "/x.y", 200,
                    {{"suggestedWindow", {{"start", "2025-01-02T04:00:00Z"}, {"end", "soon"}}}});
  http_.expect_json(
      "GET", std::string(RENEWAL_INFO) + "/x.z", 200,
      {{"suggestedWindow", {{"start", "2025-01-02T04:00:00Z"}, {"end", "2025-01-02T05:00:00Z"}}}},
      {{"retry-after", "1"}});
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  auto info = client.renewal_info("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
  ASSERT_TRUE(info) << info.error().message;
  using std::chrono::system_clock;
  EXPECT_EQ(system_clock::to_time_t(info->start), 1735790400);  // 2025-01-02T04:00:00Z
  EXPECT_EQ(info->end - info->start, std::chrono::hours(23) + milliseconds(500));
  EXPECT_EQ(info->retry_after, std::chrono::seconds(3600));

  auto bad = client.renewal_info("x.y");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::protocol);

  auto clamped = client.renewal_info("x.z");
  ASSERT_TRUE(clamped);
  EXPECT_EQ(clamped->retry_after, std::chrono::seconds(60));
}

TEST_F(ClientTest, RenewalInfoFarInTheFutureIsClampedNotOverflowed) {
  // Found by tests/fuzz/acme: a window ending in 4060 overflowed system_clock's nanoseconds.
  script_account(directory(true));
  http_.expect_json(
      "GET", std::string(RENEWAL_INFO) + "/a.b", 200,
      {{"suggestedWindow", {{"start", "2030-01-01T00:00:00Z"}, {"end", "4060-01-02T00:00:00Z"}}}});
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  auto info = client.renewal_info("a.b");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(std::chrono::system_clock::to_time_t(info->end), 7258118400);  // 2200-01-01
}

TEST_F(ClientTest, RenewalInfoDefaultsAndAbsence) {
  script_account(directory(true));
  http_.expect_json(
      "GET", std::string(RENEWAL_INFO) + "/a.b", 200,
      {{"suggestedWindow", {{"start", "2025-01-02T04:00:00Z"}, {"end", "2025-01-02T05:00:00Z"}}}});
  script_account(directory(false), ACCOUNT, false);
  Client client(http_, *account_key_, options());
  ASSERT_TRUE(client.ensure_account());
  auto info = client.renewal_info("a.b");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->retry_after, std::chrono::seconds(21600));
  ASSERT_TRUE(client.ensure_account());  // a directory without ARI now
  EXPECT_FALSE(client.has_renewal_info());
  auto none = client.renewal_info("a.b");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace fd::acme
