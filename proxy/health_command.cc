#include "proxy/health_command.h"

#include <curl/curl.h>

#include <iostream>
#include <memory>

namespace fd::proxy {
namespace {

struct CurlEasyDeleter {
  void operator()(CURL* p) const { curl_easy_cleanup(p); }
};

// The body is not needed: the status is the verdict.
size_t discard(char*, size_t size, size_t count, void*) { return size * count; }

}  // namespace

int run_health_command(const std::string& url, std::chrono::milliseconds timeout) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::cerr << "frontdoor health: libcurl failed to initialise\n";
    return 1;
  }
  std::unique_ptr<CURL, CurlEasyDeleter> easy(curl_easy_init());
  char error[CURL_ERROR_SIZE] = {};
  long timeout_ms = static_cast<long>(timeout.count());
  bool ok = easy != nullptr &&
            curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str()) == CURLE_OK &&
            curl_easy_setopt(easy.get(), CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
            curl_easy_setopt(easy.get(), CURLOPT_ERRORBUFFER, error) == CURLE_OK &&
            curl_easy_setopt(easy.get(), CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
            curl_easy_setopt(easy.get(), CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK &&
            curl_easy_setopt(easy.get(), CURLOPT_USERAGENT, "frontdoor-health") == CURLE_OK &&
            curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, discard) == CURLE_OK;
  int code = 1;
  if (!ok) {
    std::cerr << "frontdoor health: " << url << ": " << (error[0] ? error : "bad URL") << "\n";
  } else if (CURLcode rc = curl_easy_perform(easy.get()); rc != CURLE_OK) {
    std::cerr << "frontdoor health: " << url << ": "
              << (error[0] ? error : curl_easy_strerror(rc)) << "\n";
  } else {
    long status = 0;
    curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      code = 0;
    } else {
      std::cerr << "frontdoor health: " << url << ": HTTP " << status << "\n";
    }
  }
  easy.reset();
  curl_global_cleanup();
  return code;
}

}  // namespace fd::proxy
