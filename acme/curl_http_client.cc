#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <string>

#include "acme/http_client.h"

namespace fd::acme {
namespace {

constexpr char USER_AGENT[] = "frontdoor-acme";
// ACME responses are small JSON documents and PEM chains; a larger body means a broken or
// hostile server, and must not grow memory without bound.
constexpr size_t MAX_BODY_BYTES = 4 * 1024 * 1024;
constexpr size_t MAX_HEADER_BYTES = 256 * 1024;

struct CurlDeleter {
  void operator()(CURL* p) const { curl_easy_cleanup(p); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* p) const { curl_slist_free_all(p); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What the callbacks fill during one transfer.
struct Sink {
  HttpResponse response;
  size_t header_bytes = 0;
  bool too_large = false;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t n = size * count;
  if (sink->response.body.size() + n > MAX_BODY_BYTES) {
    sink->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  sink->response.body.append(data, n);
  return n;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

// Called once per header line, status line and final blank line included.
size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t n = size * count;
  sink->header_bytes += n;
  if (sink->header_bytes > MAX_HEADER_BYTES) {
    sink->too_large = true;
    return 0;
  }
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    // A new response head (after a 100 Continue, say): only the last one's fields count.
    sink->response.headers.clear();
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return n;  // blank line or obsolete line folding: nothing ACME needs
  }
  std::string name(trim(line.substr(0, colon)));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  sink->response.headers.emplace(std::move(name), std::string(trim(line.substr(colon + 1))));
  return n;
}

Errc classify(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return Errc::timeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Errc::resolve;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return Errc::tls;
    default:
      return Errc::io;
  }
}

class CurlHttpClient : public HttpClient {
 public:
  CurlHttpClient(std::string ca_bundle, std::chrono::seconds timeout,
                 std::function<bool()> cancelled)
      : ca_bundle_(std::move(ca_bundle)), timeout_(timeout), cancelled_(std::move(cancelled)) {
    global_init();
  }

  Result<HttpResponse> get(const std::string& url) override {
    return perform("GET", url, nullptr, "");
  }

  Result<HttpResponse> head(const std::string& url) override {
    return perform("HEAD", url, nullptr, "");
  }

  Result<HttpResponse> post(const std::string& url, const std::string& body,
                            const std::string& content_type) override {
    return perform("POST", url, &body, content_type);
  }

 private:
  Result<HttpResponse> perform(const char* method, const std::string& url, const std::string* body,
                               const std::string& content_type);
  Result<void> configure(const char* method, const std::string& url, const std::string* body,
                         curl_slist* headers, Sink* sink);

  std::string ca_bundle_;
  std::chrono::seconds timeout_;
  // One handle for the client's lifetime, so its connection cache keeps the TLS connection to
  // the CA alive between the dozen requests of an order.
  // libcurl's progress callback: a non-zero return aborts the transfer (shutdown).
  static int on_progress(void* arg, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* self = static_cast<const CurlHttpClient*>(arg);
    return self->cancelled_ && self->cancelled_() ? 1 : 0;
  }

  CurlPtr easy_;
  char error_buffer_[CURL_ERROR_SIZE] = {};
  std::function<bool()> cancelled_;
};

Result<void> CurlHttpClient::configure(const char* method, const std::string& url,
                                       const std::string* body, curl_slist* headers, Sink* sink) {
  CURL* h = easy_.get();
  // Reset drops the previous request's options (NOBODY, POSTFIELDS...) but keeps live connections.
  curl_easy_reset(h);
  error_buffer_[0] = '\0';
  // A zero timeout would mean "wait forever" to libcurl.
  long timeout_ms = timeout_.count() > 0 ? static_cast<long>(timeout_.count()) * 1000 : 30000;
  // RFC 8555 6.1: ACME is HTTPS only; nothing here should ever talk plain HTTP or another scheme.
  bool ok = curl_easy_setopt(h, CURLOPT_URL, url.c_str()) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer_) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_WRITEDATA, sink) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_HEADERDATA, sink) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, this) == CURLE_OK;
  // The CA bundle replaces the system roots for this client: that is what a private or test CA
  // (Pebble) needs. Verification itself is never turned off.
  if (ok && !ca_bundle_.empty()) {
    ok = curl_easy_setopt(h, CURLOPT_CAINFO, ca_bundle_.c_str()) == CURLE_OK;
  }
  if (ok && body != nullptr) {
    ok = curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size())) ==
             CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data()) == CURLE_OK;
  }
  if (ok && std::string_view(method) == "HEAD") {
    ok = curl_easy_setopt(h, CURLOPT_NOBODY, 1L) == CURLE_OK;
  }
  if (!ok) {
    return make_error(Errc::internal,
                      std::string(method) + " " + url + ": curl_easy_setopt failed");
  }
  return {};
}

Result<HttpResponse> CurlHttpClient::perform(const char* method, const std::string& url,
                                             const std::string* body,
                                             const std::string& content_type) {
  if (!easy_) {
    easy_.reset(curl_easy_init());
    if (!easy_) {
      return make_error(Errc::internal, "curl_easy_init failed");
    }
  }
  SlistPtr headers;
  auto append = [&headers](const std::string& line) {
    curl_slist* list = curl_slist_append(headers.get(), line.c_str());
    if (list == nullptr) {
      return false;  // the old list is untouched and still owned
    }
    static_cast<void>(headers.release());
    headers.reset(list);
    return true;
  };
  bool ok = content_type.empty() || append("Content-Type: " + content_type);
  // No "Expect: 100-continue" round trip for the larger JWS bodies (finalize with a CSR).
  if (ok && body != nullptr) {
    ok = append("Expect:");
  }
  if (!ok) {
    return make_error(Errc::internal, "curl_slist_append failed");
  }
  Sink sink;
  if (auto configured = configure(method, url, body, headers.get(), &sink); !configured) {
    return configured.error();
  }
  CURLcode code = curl_easy_perform(easy_.get());
  if (code != CURLE_OK) {
    std::string detail = error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(code);
    if (sink.too_large) {
      detail = "response too large";
    }
    return make_error(classify(code), std::string(method) + " " + url + ": " + detail);
  }
  curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &sink.response.status);
  return std::move(sink.response);
}

}  // namespace

std::unique_ptr<HttpClient> make_curl_http_client(const std::string& ca_bundle,
                                                  std::chrono::seconds timeout,
                                                  std::function<bool()> cancelled) {
  return std::make_unique<CurlHttpClient>(ca_bundle, timeout, std::move(cancelled));
}

}  // namespace fd::acme
