#include "acme/client.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/ossl.h"
#include "common/time_format.h"

namespace fd::acme {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr char JOSE_JSON[] = "application/jose+json";
constexpr char BAD_NONCE[] = "urn:ietf:params:acme:error:badNonce";
constexpr char ACCOUNT_DOES_NOT_EXIST[] = "urn:ietf:params:acme:error:accountDoesNotExist";
constexpr char ALREADY_REPLACED[] = "urn:ietf:params:acme:error:alreadyReplaced";
constexpr int MAX_BAD_NONCE_RETRIES = 5;
// Polling: Pebble 2.4 sends no Retry-After and validates in milliseconds; Let's Encrypt sends
// one. The floor keeps a server that says "Retry-After: 0" from being hammered; the cap keeps
// a long value from eating the whole order timeout in one sleep.
constexpr milliseconds DEFAULT_POLL{500};
constexpr milliseconds MIN_POLL{100};
constexpr milliseconds MAX_POLL{10000};
// RFC 9773 4.3.3: clients clamp the renewalInfo Retry-After to a sane range.
constexpr std::chrono::seconds MIN_ARI_RETRY{60};
constexpr std::chrono::seconds MAX_ARI_RETRY{86400};
constexpr size_t MAX_SUBPROBLEMS = 5;

std::optional<json> parse_json(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    return std::nullopt;
  }
  return j;
}

// The string member |key| of |j|, or "" when |j| is no object or the member no string.
std::string str(const json& j, const char* key) {
  if (!j.is_object()) {
    return {};
  }
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "TYPE: DETAIL" of an RFC 7807 problem document, followed by its subproblems (RFC 8555 6.7.1),
// which say which name of a multi-name order was rejected.
std::string describe_problem(const json& problem) {
  std::string text = str(problem, "type");
  std::string detail = str(problem, "detail");
  if (!detail.empty()) {
    text += text.empty() ? detail : ": " + detail;
  }
  auto subs = problem.find("subproblems");
  if (subs != problem.end() && subs->is_array()) {
    size_t shown = 0;
    for (const json& sub : *subs) {
      if (++shown > MAX_SUBPROBLEMS) {
        text += "; ...";
        break;
      }
      if (!sub.is_object()) {
        continue;
      }
      std::string name = str(sub.value("identifier", json::object()), "value");
      text +=
          "; " + (name.empty() ? "" : name + ": ") + str(sub, "type") + ": " + str(sub, "detail");
    }
  }
  return text;
}

// The problem document in |response|, if it carries one.
std::optional<json> problem_of(const HttpResponse& response) {
  auto body = parse_json(response.body);
  if (!body || !body->is_object() || str(*body, "type").empty()) {
    return std::nullopt;
  }
  return body;
}

// An error for a response that is not 2xx: "TYPE: DETAIL (HTTP 400, WHAT)" for a problem
// document, else the status and the start of the body (Pebble's 404 has an empty body).
Error response_error(const HttpResponse& response, std::string_view what) {
  std::string status = std::to_string(response.status);
  if (auto problem = problem_of(response)) {
    return make_error(Errc::protocol, describe_problem(*problem) + " (HTTP " + status + ", " +
                                          std::string(what) + ")");
  }
  std::string message = std::string(what) + ": HTTP " + status;
  if (!response.body.empty()) {
    message += ": " + response.body.substr(0, 200);
  }
  return make_error(Errc::protocol, message);
}

// True when |error| came from a problem document of |type|.
bool is_problem(const Error& error, std::string_view type) {
  const std::string& m = error.message;
  return m.size() > type.size() && m.compare(0, type.size(), type) == 0 &&
         (m[type.size()] == ':' || m[type.size()] == ' ');
}

bool is_2xx(const HttpResponse& response) {
  return response.status >= 200 && response.status < 300;
}

// RFC 8555 8.3: a token is base64url text. It ends up in an HTTP path, so check it.
bool valid_token(const std::string& token) {
  return !token.empty() && std::all_of(token.begin(), token.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

const char* challenge_name(ChallengeType type) {
  return type == ChallengeType::http01 ? "http-01" : "tls-alpn-01";
}

// |count| decimal digits at |pos| of |text|, or -1.
int digits_at(std::string_view text, size_t pos, size_t count) {
  if (pos + count > text.size()) {
    return -1;
  }
  int value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// Parses an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM).
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = digits_at(text, 0, 4) - 1900;
  tm.tm_mon = digits_at(text, 5, 2) - 1;
  tm.tm_mday = digits_at(text, 8, 2);
  tm.tm_hour = digits_at(text, 11, 2);
  tm.tm_min = digits_at(text, 14, 2);
  tm.tm_sec = digits_at(text, 17, 2);
  if (tm.tm_year < -1900 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  std::string_view rest = text.substr(19);
  std::chrono::microseconds fraction{0};
  if (rest.front() == '.') {
    size_t n = 1;
    for (long scale = 100000; n < rest.size() && rest[n] >= '0' && rest[n] <= '9'; ++n) {
      fraction += std::chrono::microseconds((rest[n] - '0') * scale);
      scale /= 10;
    }
    if (n == 1) {
      return std::nullopt;
    }
    rest.remove_prefix(n);
  }
  int offset_minutes = 0;
  if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int hours = digits_at(rest, 1, 2);
    int minutes = digits_at(rest, 4, 2);
    if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) {
      return std::nullopt;
    }
    offset_minutes = (rest[0] == '-' ? -1 : 1) * (hours * 60 + minutes);
  } else if (rest != "Z" && rest != "z") {
    return std::nullopt;
  }
  std::time_t t = timegm(&tm);
  return to_system_time(t) - std::chrono::minutes(offset_minutes) + fraction;
}

// Sends requests for one Client: signs POSTs as flattened JWS, keeps the Replay-Nonce of every
// response for the next request, and retries a badNonce rejection with the nonce it carries.
class Channel {
 public:
  Channel(HttpClient& http, const EcKey& key, std::string& nonce, const std::string& new_nonce_url)
      : http_(http), key_(key), nonce_(nonce), new_nonce_url_(new_nonce_url) {}

  // GETs |url|; any non-2xx answer becomes an error naming |what|.
  Result<HttpResponse> get(const std::string& url, std::string_view what) {
    auto response = http_.get(url);
    if (!response) {
      return response.error();
    }
    keep_nonce(*response);
    if (!is_2xx(*response)) {
      return response_error(*response, what);
    }
    return response;
  }

  // POSTs |payload| ("" = POST-as-GET) to |url| signed with |kid|, or with the account JWK when
  // |kid| is empty (newAccount). Any non-2xx answer becomes an error naming |what|.
  Result<HttpResponse> post(const std::string& url, const std::string& kid,
                            const std::string& payload, std::string_view what) {
    for (int attempt = 0;; ++attempt) {
      if (nonce_.empty()) {
        if (auto fetched = fetch_nonce(); !fetched) {
          return fetched.error();
        }
      }
      auto jws = sign_jws(key_, kid, nonce_, url, payload);
      nonce_.clear();  // single use, even when the request fails
      if (!jws) {
        return jws.error();
      }
      auto response = http_.post(url, *jws, JOSE_JSON);
      if (!response) {
        return response.error();
      }
      keep_nonce(*response);
      if (is_2xx(*response)) {
        return response;
      }
      auto problem = problem_of(*response);
      bool bad_nonce = response->status == 400 && problem && str(*problem, "type") == BAD_NONCE;
      if (!bad_nonce || attempt >= MAX_BAD_NONCE_RETRIES) {
        return response_error(*response, what);
      }
      log::debug("acme badNonce, retrying", {{"url", url}, {"attempt", attempt + 1}});
    }
  }

 private:
  void keep_nonce(const HttpResponse& response) {
    if (auto nonce = response.header("replay-nonce"); nonce && !nonce->empty()) {
      nonce_ = *nonce;
    }
  }

  Result<void> fetch_nonce() {
    auto response = http_.head(new_nonce_url_);
    if (!response) {
      return response.error();
    }
    if (!is_2xx(*response)) {
      return response_error(*response, "newNonce");
    }
    keep_nonce(*response);
    if (nonce_.empty()) {
      return make_error(Errc::protocol, "newNonce: no Replay-Nonce header");
    }
    return {};
  }

  HttpClient& http_;
  const EcKey& key_;
  std::string& nonce_;
  const std::string& new_nonce_url_;
};

// A response body that must be a JSON object.
Result<json> json_object(const HttpResponse& response, std::string_view what) {
  auto body = parse_json(response.body);
  if (!body || !body->is_object()) {
    return make_error(Errc::protocol, std::string(what) + ": response is not a JSON object");
  }
  return std::move(*body);
}

// Keeps a challenge answer reachable while it lives: the responder forgets it on every path
// out of an authorization, success, error or timeout.
class AnswerGuard {
 public:
  AnswerGuard(ChallengeResponder& responder, ChallengeType type, std::string key)
      : responder_(responder), type_(type), key_(std::move(key)) {}
  ~AnswerGuard() {
    if (type_ == ChallengeType::http01) {
      responder_.remove_http01(key_);
    } else {
      responder_.remove_tls_alpn01(key_);
    }
  }
  AnswerGuard(const AnswerGuard&) = delete;
  AnswerGuard& operator=(const AnswerGuard&) = delete;

 private:
  ChallengeResponder& responder_;
  ChallengeType type_;
  std::string key_;
};

// One order from newOrder to the downloaded chain, bounded by a timeout. |kid| is read at each
// request, so a re-registration between attempts is picked up.
class OrderRun {
 public:
  OrderRun(Channel& channel, const std::string& kid, const EcKey& account_key,
           ChallengeResponder& responder, ChallengeType type,
           const std::function<void(milliseconds)>& sleep, const std::function<bool()>& cancelled,
           std::chrono::seconds timeout)
      : channel_(channel),
        kid_(kid),
        account_key_(account_key),
        responder_(responder),
        type_(type),
        sleep_(sleep),
        cancelled_(cancelled),
        timeout_(timeout),
        start_(std::chrono::steady_clock::now()) {}

  Result<std::string> run(const std::vector<std::string>& names, const EcKey& cert_key,
                          const std::string& new_order_url, const std::string& replaces);

 private:
  Result<json> post_json(const std::string& url, const std::string& payload, std::string_view what,
                         HttpResponse* raw = nullptr);
  Result<std::pair<json, std::string>> new_order(const std::vector<std::string>& names,
                                                 const std::string& new_order_url,
                                                 const std::string& replaces);
  Result<void> authorize(const std::string& authz_url);
  Result<std::unique_ptr<AnswerGuard>> present(const std::string& name, const std::string& token);
  Result<json> finalize(const json& order, const std::string& order_url,
                        const std::vector<std::string>& names, const EcKey& cert_key);
  Result<json> poll(const std::string& url, std::initializer_list<std::string_view> waiting,
                    std::string_view what);
  Result<void> wait(const HttpResponse& response, std::string_view what, const std::string& status);
  // Time spent on this order: wall time, or the time slept when the sleep is a test's fake.
  std::chrono::milliseconds elapsed() const {
    auto wall = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start_);
    return std::max(wall, slept_);
  }

  Channel& channel_;
  const std::string& kid_;
  const EcKey& account_key_;
  ChallengeResponder& responder_;
  ChallengeType type_;
  const std::function<void(milliseconds)>& sleep_;
  const std::function<bool()>& cancelled_;
  std::chrono::seconds timeout_;
  std::chrono::steady_clock::time_point start_;
  milliseconds slept_{0};
};

Result<json> OrderRun::post_json(const std::string& url, const std::string& payload,
                                 std::string_view what, HttpResponse* raw) {
  auto response = channel_.post(url, kid_, payload, what);
  if (!response) {
    return response.error();
  }
  auto body = json_object(*response, what);
  if (body && raw != nullptr) {
    *raw = std::move(*response);
  }
  return body;
}

Result<std::pair<json, std::string>> OrderRun::new_order(const std::vector<std::string>& names,
                                                         const std::string& new_order_url,
                                                         const std::string& replaces) {
  json identifiers = json::array();
  for (const std::string& name : names) {
    identifiers.push_back({{"type", "dns"}, {"value", name}});
  }
  json payload = {{"identifiers", identifiers}};
  if (!replaces.empty()) {
    payload["replaces"] = replaces;
  }
  HttpResponse raw;
  auto order = post_json(new_order_url, payload.dump(), "newOrder", &raw);
  if (!order && !replaces.empty() && is_problem(order.error(), ALREADY_REPLACED)) {
    // Another order already replaces that certificate (say, a replica's): still get one.
    log::warn("acme order: certificate already replaced, ordering without 'replaces'",
              {{"replaces", replaces}});
    payload.erase("replaces");
    order = post_json(new_order_url, payload.dump(), "newOrder", &raw);
  }
  if (!order) {
    return order.error();
  }
  // The order body has no url of its own: Location is the only way back to it.
  auto location = raw.header("location");
  if (!location || location->empty()) {
    return make_error(Errc::protocol, "newOrder: no Location header");
  }
  return std::make_pair(std::move(*order), *location);
}

Result<std::string> OrderRun::run(const std::vector<std::string>& names, const EcKey& cert_key,
                                  const std::string& new_order_url, const std::string& replaces) {
  if (names.empty()) {
    return make_error(Errc::invalid_argument, "order: no names");
  }
  auto created = new_order(names, new_order_url, replaces);
  if (!created) {
    return created.error();
  }
  auto& [order, order_url] = *created;
  auto authzs = order.find("authorizations");
  if (authzs == order.end() || !authzs->is_array()) {
    return make_error(Errc::protocol, "newOrder: no authorizations");
  }
  for (const json& authz : *authzs) {
    if (!authz.is_string()) {
      return make_error(Errc::protocol, "newOrder: authorization is not a URL");
    }
    if (auto done = authorize(authz.get<std::string>()); !done) {
      return done.error();
    }
  }
  auto current = poll(order_url, {"pending"}, "order");
  if (!current) {
    return current.error();
  }
  if (str(*current, "status") == "ready") {
    current = finalize(*current, order_url, names, cert_key);
    if (!current) {
      return current.error();
    }
  }
  std::string status = str(*current, "status");
  if (status != "valid") {
    std::string message = "order " + order_url + " is " + status;
    if (auto error = current->find("error"); error != current->end() && error->is_object()) {
      message += ": " + describe_problem(*error);
    }
    return make_error(Errc::protocol, message);
  }
  std::string certificate_url = str(*current, "certificate");
  if (certificate_url.empty()) {
    return make_error(Errc::protocol, "order " + order_url + " is valid but has no certificate");
  }
  auto chain = channel_.post(certificate_url, kid_, "", "certificate");
  if (!chain) {
    return chain.error();
  }
  if (chain->body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return make_error(Errc::protocol, "certificate: response is not a PEM chain");
  }
  return std::move(chain->body);
}

Result<void> OrderRun::authorize(const std::string& authz_url) {
  auto authz = post_json(authz_url, "", "authorization");
  if (!authz) {
    return authz.error();
  }
  std::string name = str(authz->value("identifier", json::object()), "value");
  std::string status = str(*authz, "status");
  if (status == "valid") {
    return {};  // reused from an earlier order
  }
  if (status != "pending") {
    return make_error(Errc::protocol, "authorization for " + name + " is " + status);
  }
  std::optional<json> challenge;
  for (const json& c : authz->value("challenges", json::array())) {
    if (str(c, "type") == challenge_name(type_)) {
      challenge = c;
      break;
    }
  }
  if (!challenge) {
    return make_error(Errc::protocol, std::string("the CA offers no ") + challenge_name(type_) +
                                          " challenge for " + name);
  }
  std::string token = str(*challenge, "token");
  if (!valid_token(token)) {
    return make_error(Errc::protocol, "challenge for " + name + " has an invalid token");
  }
  auto guard = present(name, token);
  if (!guard) {
    return guard.error();
  }
  // A challenge already "processing" (or further) needs no trigger, only polling.
  std::string challenge_status = str(*challenge, "status");
  if (challenge_status.empty() || challenge_status == "pending") {
    // "{}" triggers the validation; a "keyAuthorization" member would be rejected.
    if (auto triggered = post_json(str(*challenge, "url"), "{}", "challenge"); !triggered) {
      return triggered.error();
    }
  }
  auto final_authz = poll(authz_url, {"pending"}, "authorization");
  if (!final_authz) {
    return final_authz.error();
  }
  if (str(*final_authz, "status") == "valid") {
    return {};
  }
  std::string message = "authorization for " + name + " is " + str(*final_authz, "status");
  for (const json& c : final_authz->value("challenges", json::array())) {
    if (auto error = c.find("error"); error != c.end() && error->is_object()) {
      message += ": " + describe_problem(*error);
      break;
    }
  }
  return make_error(Errc::protocol, message);
}

Result<std::unique_ptr<AnswerGuard>> OrderRun::present(const std::string& name,
                                                       const std::string& token) {
  std::string key_authz = key_authorization(token, account_key_);
  if (type_ == ChallengeType::http01) {
    responder_.add_http01(token, key_authz);
    return std::make_unique<AnswerGuard>(responder_, type_, token);
  }
  auto cert = make_tls_alpn_certificate(name, key_authz);
  if (!cert) {
    return cert.error();
  }
  responder_.add_tls_alpn01(name, *cert);
  return std::make_unique<AnswerGuard>(responder_, type_, name);
}

Result<json> OrderRun::finalize(const json& order, const std::string& order_url,
                                const std::vector<std::string>& names, const EcKey& cert_key) {
  auto csr = make_csr_der(cert_key, names);
  if (!csr) {
    return csr.error();
  }
  std::string finalize_url = str(order, "finalize");
  if (finalize_url.empty()) {
    return make_error(Errc::protocol, "order " + order_url + " has no finalize URL");
  }
  json payload = {{"csr", base64url(*csr)}};
  HttpResponse raw;
  auto finalized = post_json(finalize_url, payload.dump(), "finalize", &raw);
  if (!finalized) {
    return finalized.error();
  }
  std::string status = str(*finalized, "status");
  if (status != "processing") {
    return finalized;
  }
  // Issuance has started; the finalize answer's Retry-After says when to look again.
  if (auto waited = wait(raw, "order", status); !waited) {
    return waited.error();
  }
  return poll(order_url, {"processing"}, "order");
}

// POST-as-GETs |url| until its status leaves |waiting|.
Result<json> OrderRun::poll(const std::string& url, std::initializer_list<std::string_view> waiting,
                            std::string_view what) {
  for (;;) {
    HttpResponse raw;
    auto object = post_json(url, "", what, &raw);
    if (!object) {
      return object.error();
    }
    std::string status = str(*object, "status");
    if (std::find(waiting.begin(), waiting.end(), status) == waiting.end()) {
      return object;
    }
    if (auto waited = wait(raw, what, status); !waited) {
      return waited.error();
    }
  }
}

Result<void> OrderRun::wait(const HttpResponse& response, std::string_view what,
                            const std::string& status) {
  if (cancelled_ && cancelled_()) {
    return make_error(Errc::io, std::string(what) + ": abandoned, frontdoor is stopping");
  }
  milliseconds left = std::chrono::duration_cast<milliseconds>(timeout_) - elapsed();
  if (left <= milliseconds(0)) {
    return make_error(Errc::timeout, std::string(what) + " still " + status + " after " +
                                         std::to_string(timeout_.count()) + "s");
  }
  milliseconds delay = DEFAULT_POLL;
  if (auto header = response.header("retry-after")) {
    if (auto seconds = parse_retry_after(*header, std::chrono::system_clock::now())) {
      delay = *seconds;
    }
  }
  delay = std::min(std::clamp(delay, MIN_POLL, MAX_POLL), left);
  sleep_(delay);
  slept_ += delay;
  return {};
}

// newAccount: registers the key, or finds the account it already has (200 instead of 201).
// Returns the account URL, the kid of every later request.
Result<std::string> register_account(Channel& channel, const EcKey& key,
                                     const ClientOptions& options,
                                     const std::string& new_account_url) {
  json payload = {{"termsOfServiceAgreed", true}};
  if (!options.email.empty()) {
    payload["contact"] = json::array({"mailto:" + options.email});
  }
  if (!options.eab_kid.empty()) {
    auto eab = eab_jws(options.eab_kid, options.eab_hmac_key, key, new_account_url);
    if (!eab) {
      return eab.error();
    }
    payload["externalAccountBinding"] = std::move(*eab);
  }
  auto response = channel.post(new_account_url, "", payload.dump(), "newAccount");
  if (!response) {
    return response.error();
  }
  auto location = response->header("location");
  if (!location || location->empty()) {
    return make_error(Errc::protocol, "newAccount: no Location header");
  }
  auto account = parse_json(response->body);
  std::string status = account ? str(*account, "status") : "";
  if (!status.empty() && status != "valid") {
    return make_error(Errc::protocol, "account " + *location + " is " + status);
  }
  return *location;
}

}  // namespace

Client::Client(HttpClient& http, const EcKey& account_key, ClientOptions options)
    : http_(http), key_(account_key), options_(std::move(options)) {
  directory_url_ = options_.directory_url;
  if (!options_.sleep) {
    options_.sleep = [](milliseconds delay) { std::this_thread::sleep_for(delay); };
  }
}

Result<void> Client::ensure_account() {
  if (options_.eab_kid.empty() != options_.eab_hmac_key.empty()) {
    return make_error(Errc::invalid_argument,
                      "External Account Binding needs both the key id and the HMAC key");
  }
  Channel channel(http_, key_, nonce_, new_nonce_url_);
  auto response = channel.get(directory_url_, "directory");
  if (!response) {
    return response.error();
  }
  auto directory = json_object(*response, "directory");
  if (!directory) {
    return directory.error();
  }
  new_nonce_url_ = str(*directory, "newNonce");
  new_account_url_ = str(*directory, "newAccount");
  new_order_url_ = str(*directory, "newOrder");
  renewal_info_url_ = str(*directory, "renewalInfo");
  if (new_nonce_url_.empty() || new_account_url_.empty() || new_order_url_.empty()) {
    return make_error(Errc::protocol,
                      "directory " + directory_url_ + " lacks newNonce, newAccount or newOrder");
  }
  json meta = directory->value("meta", json::object());
  bool eab_required = meta.is_object() && meta.contains("externalAccountRequired") &&
                      meta["externalAccountRequired"].is_boolean() &&
                      meta["externalAccountRequired"].get<bool>();
  if (eab_required && options_.eab_kid.empty()) {
    return make_error(Errc::invalid_argument,
                      "the CA requires External Account Binding (eab key id and HMAC key)");
  }
  auto url = register_account(channel, key_, options_, new_account_url_);
  if (!url) {
    return url.error();
  }
  account_url_ = std::move(*url);
  return {};
}

Result<std::string> Client::order_certificate(const std::vector<std::string>& names,
                                              ChallengeType type, const EcKey& cert_key,
                                              ChallengeResponder& responder,
                                              const std::string& replaces) {
  if (account_url_.empty()) {
    if (auto account = ensure_account(); !account) {
      return account.error();
    }
  }
  Channel channel(http_, key_, nonce_, new_nonce_url_);
  // RFC 9773 7: "replaces" only goes to a CA that offers ARI.
  std::string replaced = has_renewal_info() ? replaces : std::string();
  OrderRun run(channel, account_url_, key_, responder, type, options_.sleep, options_.cancelled,
               options_.order_timeout);
  auto chain = run.run(names, cert_key, new_order_url_, replaced);
  if (!chain && is_problem(chain.error(), ACCOUNT_DOES_NOT_EXIST)) {
    // The CA forgot the account (a restarted Pebble keeps everything in memory): register the
    // same key again, once, and start the order over.
    log::warn("acme account unknown to the CA, registering again", {{"account", account_url_}});
    auto url = register_account(channel, key_, options_, new_account_url_);
    if (!url) {
      return url.error();
    }
    account_url_ = std::move(*url);
    chain = run.run(names, cert_key, new_order_url_, replaced);
  }
  return chain;
}

Result<std::string> Client::renewal_id(const std::string& chain_pem) {
  ossl::BioPtr bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  ossl::X509Ptr leaf(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!leaf) {
    return make_error(Errc::invalid_argument,
                      "renewal id: no certificate in the chain: " + ossl::errors());
  }
  const ASN1_OCTET_STRING* key_id = X509_get0_authority_key_id(leaf.get());
  if (key_id == nullptr || key_id->length <= 0) {
    return make_error(Errc::invalid_argument,
                      "renewal id: the certificate has no authority key identifier");
  }
  // The serial's DER content octets: the INTEGER encoding without tag and length, so a leading
  // 0x00 that keeps it positive is part of it (RFC 9773 4.1).
  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf.get());
  int der_len = i2d_ASN1_INTEGER(serial, nullptr);
  if (der_len < 3) {
    return make_error(Errc::invalid_argument, "renewal id: bad serial number");
  }
  std::string der(static_cast<size_t>(der_len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_ASN1_INTEGER(serial, &out);
  auto length_byte = static_cast<unsigned char>(der[1]);
  size_t header = length_byte < 0x80 ? 2 : 2 + (length_byte & 0x7f);
  if (header >= der.size()) {
    return make_error(Errc::invalid_argument, "renewal id: bad serial number");
  }
  std::string_view key_bytes(reinterpret_cast<const char*>(key_id->data),
                             static_cast<size_t>(key_id->length));
  return base64url(key_bytes) + "." + base64url(std::string_view(der).substr(header));
}

Result<RenewalInfo> Client::renewal_info(const std::string& renewal_id) {
  if (renewal_info_url_.empty()) {
    return make_error(Errc::invalid_argument, "the CA offers no renewalInfo");
  }
  std::string url = renewal_info_url_;
  if (url.back() != '/') {
    url += '/';
  }
  url += renewal_id;
  Channel channel(http_, key_, nonce_, new_nonce_url_);
  auto response = channel.get(url, "renewalInfo");
  if (!response) {
    return response.error();
  }
  auto body = json_object(*response, "renewalInfo");
  if (!body) {
    return body.error();
  }
  json window = body->value("suggestedWindow", json::object());
  auto start = parse_rfc3339(str(window, "start"));
  auto end = parse_rfc3339(str(window, "end"));
  if (!start || !end || *end < *start) {
    return make_error(Errc::protocol, "renewalInfo: no valid suggestedWindow");
  }
  RenewalInfo info;
  info.start = *start;
  info.end = *end;
  if (auto header = response->header("retry-after")) {
    if (auto seconds = parse_retry_after(*header, std::chrono::system_clock::now())) {
      info.retry_after = std::clamp(*seconds, MIN_ARI_RETRY, MAX_ARI_RETRY);
    }
  }
  return info;
}

}  // namespace fd::acme
