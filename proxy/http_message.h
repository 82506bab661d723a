#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fd::proxy {

struct Header {
  std::string name;
  std::string value;
};

// Reason phrase for the statuses the proxy itself produces ("Error" for others).
const char* reason_phrase(int status);

// ASCII case-insensitive comparison for header names and tokens. Inline: header handling
// calls it about a hundred times per response, nearly always on names of different lengths.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    // Bytes that differ are equal only as the two cases of one ASCII letter.
    char folded = static_cast<char>(x | 0x20);
    if (x != y && (folded != static_cast<char>(y | 0x20) || folded < 'a' || folded > 'z')) {
      return false;
    }
  }
  return true;
}

// |s| without the spaces and tabs (HTTP's optional whitespace) at either end.
std::string_view trim_ows(std::string_view s);

// True if the comma-separated token list |list| (a Connection header value) contains |token|.
bool has_token(std::string_view list, std::string_view token);

struct RequestHead {
  std::string method;
  std::string target;  // origin-form "/path?q" (an absolute-form one is rewritten to it), or "*"
  int version_major = 1;
  int version_minor = 1;
  std::vector<Header> headers;
  int64_t content_length = -1;  // -1: none
  bool chunked = false;
  bool keep_alive = true;  // llhttp's verdict from version and Connection

  // First header named |name| (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const;
  bool has_body() const { return chunked || content_length > 0; }
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_major = 1;
  int version_minor = 1;
  std::vector<Header> headers;
  int64_t content_length = -1;
  bool chunked = false;
  bool keep_alive = true;

  const std::string* find(std::string_view name) const;
};

}  // namespace fd::proxy
