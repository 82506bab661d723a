#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace fd::acme {

struct HttpResponse {
  long status = 0;
  std::multimap<std::string, std::string> headers;  // names lowercased; repeated ones kept
  std::string body;

  // First value of header |name| (lowercase), or nullopt.
  std::optional<std::string> header(const std::string& name) const;
};

// The ACME side's only way to the network: a narrow, blocking HTTP interface, so the protocol
// code can be tested against a fake. Called from the ACME thread only.
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual Result<HttpResponse> get(const std::string& url) = 0;
  virtual Result<HttpResponse> head(const std::string& url) = 0;
  // POST |body| with Content-Type exactly |content_type|.
  virtual Result<HttpResponse> post(const std::string& url, const std::string& body,
                                    const std::string& content_type) = 0;
};

// libcurl implementation. |ca_bundle|: extra PEM roots to trust for the ACME server ("" = the
// system roots only). Each request is bounded by |timeout|, and aborted as soon as |cancelled|
// (may be empty) returns true. TLS verification is never off.
std::unique_ptr<HttpClient> make_curl_http_client(const std::string& ca_bundle,
                                                  std::chrono::seconds timeout,
                                                  std::function<bool()> cancelled);

// Parses a Retry-After value: delta-seconds or an HTTP-date (RFC 9110 10.2.3), relative to
// |now|. nullopt when it is neither; a date in the past gives 0.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

}  // namespace fd::acme
