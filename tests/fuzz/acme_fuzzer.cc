// A hostile or broken CA, through the ACME client: every answer to the client's requests
// (status, headers, JSON or PEM body) comes from the input, and the client runs what the
// renewal side runs: the account, one order with its authorizations, challenges, finalize and
// download, the ARI id of the chain it got and renewalInfo. Whatever the CA says, the client
// must end with a certificate or an error (no exception, no crash, no endless loop), and every
// request it sends must be a flattened JWS it signed over the URL it posts to.
//
// Input: a first line of words ("tls-alpn-01" solves that challenge instead of http-01, "eab"
// sends External Account Binding), then the CA's answers in order, separated by lines "%%".
// An answer is a status line ("0": no HTTP answer at all), header lines "name: value", an
// empty line, and the body.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "acme/client.h"
#include "acme/crypto.h"
#include "acme/http_client.h"
#include "tests/fuzz/fuzz_support.h"

namespace fd::acme {
namespace {

using fuzz::check;
using nlohmann::json;

// The protected header of a flattened JWS the client sent must name |url|.
void check_jws(const std::string& body, const std::string& url) {
  json jws = json::parse(body, nullptr, false);
  check(jws.is_object() && jws.contains("protected") && jws.contains("payload") &&
            jws.contains("signature"),
        "a POST body is not a flattened JWS");
  auto header = base64url_decode(jws["protected"].get<std::string>());
  check(header.has_value(), "a JWS protected header is not base64url");
  json protected_header = json::parse(*header, nullptr, false);
  check(protected_header.is_object() && protected_header.value("url", "") == url,
        "a JWS is not signed over the URL it is posted to");
  check(protected_header.value("alg", "") == "ES256", "a JWS is not ES256");
}

class ScriptedCa : public HttpClient {
 public:
  explicit ScriptedCa(std::string_view script) {
    constexpr std::string_view SEPARATOR = "\n%%\n";
    while (!script.empty()) {
      size_t end = script.find(SEPARATOR);
      answers_.push_back(script.substr(0, end));
      script = end == std::string_view::npos ? std::string_view() : script.substr(end + 4);
    }
  }

  Result<HttpResponse> get(const std::string&) override { return next(); }
  Result<HttpResponse> head(const std::string&) override { return next(); }
  Result<HttpResponse> post(const std::string& url, const std::string& body,
                            const std::string& content_type) override {
    check(content_type == "application/jose+json", "a POST is not application/jose+json");
    check_jws(body, url);
    return next();
  }

 private:
  Result<HttpResponse> next() {
    if (answers_.empty()) {
      return make_error(Errc::io, "the script has ended");
    }
    std::string_view text = answers_.front();
    answers_.pop_front();
    HttpResponse response;
    std::string_view status = take_line(&text);
    for (char c : status) {
      if (c < '0' || c > '9' || response.status > 999) {
        break;
      }
      response.status = response.status * 10 + (c - '0');
    }
    if (response.status == 0) {
      return make_error(Errc::io, "connection refused");
    }
    for (std::string_view line = take_line(&text); !line.empty(); line = take_line(&text)) {
      size_t colon = line.find(':');
      std::string name(line.substr(0, colon));
      for (char& c : name) {
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      }
      std::string_view value =
          colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
      }
      response.headers.emplace(std::move(name), std::string(value));
    }
    response.body = std::string(text);
    return response;
  }

  static std::string_view take_line(std::string_view* text) {
    size_t end = text->find('\n');
    std::string_view line = text->substr(0, end);
    *text = end == std::string_view::npos ? std::string_view() : text->substr(end + 1);
    return line;
  }

  std::deque<std::string_view> answers_;
};

class Responder : public ChallengeResponder {
 public:
  void add_http01(const std::string&, const std::string&) override { ++live; }
  void remove_http01(const std::string&) override { --live; }
  void add_tls_alpn01(const std::string&, const ChallengeCertificate&) override { ++live; }
  void remove_tls_alpn01(const std::string&) override { --live; }
  int live = 0;
};

struct Keys {
  EcKey account;
  EcKey certificate;
};

const Keys& keys() {
  static const Keys made = [] {
    auto account = EcKey::generate();
    auto certificate = EcKey::generate();
    check(account && certificate, "no P-256 keys");
    return Keys{std::move(*account), std::move(*certificate)};
  }();
  return made;
}

}  // namespace
}  // namespace fd::acme

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fd::acme;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t first_line = input.find('\n');
  std::string_view words = input.substr(0, first_line);
  std::string_view script =
      first_line == std::string_view::npos ? std::string_view() : input.substr(first_line + 1);

  ClientOptions options;
  options.directory_url = "https://ca.test/dir";
  options.email = "ops@example.test";
  if (words.find("eab") != std::string_view::npos) {
    options.eab_kid = "kid-1";
    options.eab_hmac_key = "c2VjcmV0LWtleS1mb3ItZnV6emluZw";
  }
  options.sleep = [](std::chrono::milliseconds) {};
  ChallengeType type = words.find("tls-alpn-01") != std::string_view::npos
                           ? ChallengeType::tls_alpn01
                           : ChallengeType::http01;

  ScriptedCa ca(script);
  Client client(ca, keys().account, options);
  if (!client.ensure_account()) {
    return 0;
  }
  Responder responder;
  auto chain = client.order_certificate({"a.test", "b.test"}, type, keys().certificate, responder,
                                        "");
  fd::fuzz::check(responder.live == 0, "a challenge answer was left behind");
  if (!chain) {
    return 0;
  }
  (void)inspect_chain(*chain, keys().certificate.to_pem(), std::time(nullptr));
  auto id = Client::renewal_id(*chain);
  if (client.has_renewal_info()) {
    (void)client.renewal_info(id ? *id : std::string("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"));
  }
  return 0;
}
