#pragma once

#include <string>
#include <utility>
#include <variant>

namespace fd {

// Error categories for failures on the data plane and at startup. Traffic-caused failures are
// handled and logged; they never throw.
enum class Errc {
  invalid_argument,
  io,
  tls,
  resolve,
  bind,
  timeout,
  protocol,
  internal,
};

// Short stable name of |code|, used in log lines.
const char* to_string(Errc code);

struct Error {
  Errc code;
  std::string message;
};

// A value or an Error, shaped like C++23 std::expected so it can become a typedef later.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{Errc::internal, {}};
  bool ok_ = true;
};

inline Error make_error(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

inline const char* to_string(Errc code) {
  switch (code) {
    case Errc::invalid_argument:
      return "invalid_argument";
    case Errc::io:
      return "io";
    case Errc::tls:
      return "tls";
    case Errc::resolve:
      return "resolve";
    case Errc::bind:
      return "bind";
    case Errc::timeout:
      return "timeout";
    case Errc::protocol:
      return "protocol";
    case Errc::internal:
      return "internal";
  }
  return "unknown";
}

}  // namespace fd
