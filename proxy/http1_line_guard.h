#pragma once

#include <cstddef>

namespace fd::proxy {

// The line structure of an HTTP/1 head, checked byte by byte ahead of llhttp, for what llhttp
// 8.1 accepts even in strict mode and RFC 9112 says a recipient must reject or may not rely
// on: a bare LF or CR as a line end (§2.2), a line starting with whitespace, that is obs-fold
// or whitespace before the first header (§5.2, §2.2), and more than one SP or an HTAB between
// the parts of a request line (§3). llhttp still does all the parsing; this only refuses.
class Http1LineGuard {
 public:
  explicit Http1LineGuard(bool request) : request_(request) {}

  // Scans the next |len| bytes of a head: why the head is refused, or nullptr while it is fine.
  // Once the empty line ending the head has been seen, the bytes after it (a body, the next
  // message) are not looked at until reset().
  const char* scan(const char* data, size_t len);
  // Before the next message on the same connection.
  void reset();

 private:
  bool request_;
  bool done_ = false;
  bool after_cr_ = false;
  bool line_start_ = true;
  bool first_line_ = true;
  bool leading_ = true;  // only empty lines so far, which RFC 9112 §2.2 lets us skip
  bool after_sp_ = false;
};

}  // namespace fd::proxy
