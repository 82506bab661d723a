#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "acme/crypto.h"
#include "acme/http_client.h"

namespace fd::acme::test {

// One request the client under test sent.
struct RecordedRequest {
  std::string method;  // "GET", "HEAD" or "POST"
  std::string url;
  std::string body;
  std::string content_type;
  // The Replay-Nonce the fake answered with ("" when none).
  std::string answered_nonce;
};

// A scripted HttpClient: each expect() queues the request the client must send next and the
// answer it gets. A request that differs from the script, or one past its end, fails the test
// and gets an Errc::io error. HEAD and POST answers without a Replay-Nonce get a fresh
// "nonce-N" one (as a real CA's do), so tests can check the nonce chain.
class FakeHttpClient : public HttpClient {
 public:
  using Headers = std::multimap<std::string, std::string>;

  FakeHttpClient& expect(std::string method, std::string url, long status, std::string body = "",
                         Headers headers = {}) {
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    response.headers = std::move(headers);
    script_.push_back({std::move(method), std::move(url), std::move(response)});
    return *this;
  }

  FakeHttpClient& expect_json(std::string method, std::string url, long status,
                              const nlohmann::json& body, Headers headers = {}) {
    return expect(std::move(method), std::move(url), status, body.dump(), std::move(headers));
  }

  // The next request fails in transport (no HTTP answer at all).
  FakeHttpClient& expect_transport_error(std::string method, std::string url) {
    script_.push_back({std::move(method), std::move(url), std::nullopt});
    return *this;
  }

  Result<HttpResponse> get(const std::string& url) override { return answer("GET", url, "", ""); }
  Result<HttpResponse> head(const std::string& url) override { return answer("HEAD", url, "", ""); }
  Result<HttpResponse> post(const std::string& url, const std::string& body,
                            const std::string& content_type) override {
    return answer("POST", url, body, content_type);
  }

  const std::vector<RecordedRequest>& requests() const { return requests_; }
  size_t remaining() const { return script_.size(); }
  // Adds no Replay-Nonce on its own; only what the script says.
  void set_auto_nonce(bool on) { auto_nonce_ = on; }

 private:
  struct Step {
    std::string method;
    std::string url;
    std::optional<HttpResponse> response;
  };

  Result<HttpResponse> answer(const std::string& method, const std::string& url,
                              const std::string& body, const std::string& content_type) {
    requests_.push_back({method, url, body, content_type, ""});
    if (script_.empty()) {
      ADD_FAILURE() << "unexpected request past the script: " << method << " " << url;
      return make_error(Errc::io, "fake: no scripted answer");
    }
    Step step = std::move(script_.front());
    script_.pop_front();
    if (step.method != method || step.url != url) {
      ADD_FAILURE() << "request #" << requests_.size() << ": expected " << step.method << " "
                    << step.url << ", got " << method << " " << url;
      script_.clear();
      return make_error(Errc::io, "fake: unexpected request");
    }
    if (!step.response) {
      return make_error(Errc::io, "fake: connection refused");
    }
    HttpResponse response = std::move(*step.response);
    if (auto_nonce_ && method != "GET" && !response.header("replay-nonce")) {
      response.headers.emplace("replay-nonce", "nonce-" + std::to_string(++nonce_counter_));
    }
    requests_.back().answered_nonce = response.header("replay-nonce").value_or("");
    return response;
  }

  std::deque<Step> script_;
  std::vector<RecordedRequest> requests_;
  bool auto_nonce_ = true;
  int nonce_counter_ = 0;
};

// A flattened JWS taken apart: the decoded protected header and payload text.
struct DecodedJws {
  nlohmann::json outer;
  nlohmann::json protected_header;
  std::string payload;  // exact text; "" for POST-as-GET
};

inline DecodedJws decode_jws(const std::string& body) {
  DecodedJws jws;
  jws.outer = nlohmann::json::parse(body, nullptr, false);
  if (!jws.outer.is_object() || !jws.outer.contains("protected") ||
      !jws.outer.contains("payload") || !jws.outer.contains("signature")) {
    ADD_FAILURE() << "not a flattened JWS: " << body;
    return jws;
  }
  auto header = base64url_decode(jws.outer["protected"].get<std::string>());
  auto payload = base64url_decode(jws.outer["payload"].get<std::string>());
  if (!header || !payload) {
    ADD_FAILURE() << "bad base64url in JWS: " << body;
    return jws;
  }
  jws.protected_header = nlohmann::json::parse(*header, nullptr, false);
  jws.payload = *payload;
  return jws;
}

}  // namespace fd::acme::test
