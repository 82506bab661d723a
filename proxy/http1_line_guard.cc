#include "proxy/http1_line_guard.h"

namespace fd::proxy {

void Http1LineGuard::reset() {
  done_ = false;
  after_cr_ = false;
  line_start_ = true;
  first_line_ = true;
  leading_ = true;
  after_sp_ = false;
}

Http1LineGuard::Scan Http1LineGuard::scan(const char* data, size_t len) {
  Scan out;
  for (size_t i = 0; i < len && !done_; ++i) {
    char c = data[i];
    if (after_cr_) {
      if (c != '\n') {
        out.error = "bare CR in the message head";
        return out;
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
      out.error = "bare LF in the message head";
      return out;
    }
    if (line_start_) {
      if (c == ' ' || c == '\t') {
        out.error = first_line_ ? "whitespace before the start line"
                                : "header line starting with whitespace (obs-fold)";
        return out;
      }
      line_start_ = false;
      leading_ = false;
    }
    if (request_ && first_line_) {
      if (c == '\t' || (c == ' ' && after_sp_)) {
        out.error = "request line parts not separated by single spaces";
        return out;
      }
      after_sp_ = c == ' ';
    }
  }
  out.head_done = done_;
  return out;
}

}  // namespace fd::proxy
