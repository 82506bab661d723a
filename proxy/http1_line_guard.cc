#include "proxy/http1_line_guard.h"

#include <cstring>

namespace fd::proxy {

void Http1LineGuard::reset() {
  done_ = false;
  after_cr_ = false;
  line_start_ = true;
  first_line_ = true;
  leading_ = true;
  after_sp_ = false;
}

const char* Http1LineGuard::scan(const char* data, size_t len) {
  for (size_t i = 0; i < len && !done_; ++i) {
    char c = data[i];
    if (after_cr_) {
      if (c != '\n') {
        return "bare CR in the message head";
      }
      after_cr_ = false;
      if (!line_start_) {
        line_start_ = true;
        first_line_ = false;
      } else if (!leading_) {
        done_ = true;
      }
      continue;
    }
    if (c == '\r') {
      after_cr_ = true;
      continue;
    }
    if (c == '\n') {
      return "bare LF in the message head";
    }
    if (line_start_) {
      if (c == ' ' || c == '\t') {
        return first_line_ ? "whitespace before the start line"
                           : "header line starting with whitespace (obs-fold)";
      }
      line_start_ = false;
      leading_ = false;
    }
    if (request_ && first_line_) {
      if (c == '\t' || (c == ' ' && after_sp_)) {
        return "request line parts not separated by single spaces";
      }
      after_sp_ = c == ' ';
      continue;
    }
    // Inside a header or status line only the line end matters: jump to the next CR, with
    // no LF before it (memchr runs a word or a vector at a time).
    const char* from = data + i + 1;
    const char* end = data + len;
    const char* cr = static_cast<const char*>(std::memchr(from, '\r', end - from));
    const char* stop = cr != nullptr ? cr : end;
    if (std::memchr(from, '\n', stop - from) != nullptr) {
      return "bare LF in the message head";
    }
    i = static_cast<size_t>(stop - data) - 1;
  }
  return nullptr;
}

}  // namespace fd::proxy
