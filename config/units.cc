#include "config/units.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <utility>

namespace fd::config {
namespace {

constexpr std::string_view UNITS_HINT = "use ms, s, m, h or d";

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

Error invalid(std::string message) {
  return make_error(Errc::invalid_argument, std::move(message));
}

// Duration units and their milliseconds, smallest first.
constexpr std::pair<std::string_view, int64_t> UNITS[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
};

// Milliseconds per unit; 0 for an unknown unit.
int64_t unit_millis(std::string_view unit) {
  for (const auto& [name, millis] : UNITS) {
    if (unit == name) {
      return millis;
    }
  }
  return 0;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_host_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
         c == '_';
}

// Parses "1".."65535" with nothing else around it.
bool parse_port(std::string_view text, uint16_t* port) {
  if (text.empty() || !is_digit(text.front())) {
    return false;
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// Checks the part before the port: empty or "*" (any address), a bracketed IPv6 literal, or a
// host name / IPv4 address. Returns the host without brackets.
Result<std::string> parse_host(std::string_view host, std::string_view text) {
  if (host.empty() || host == "*") {
    return std::string();
  }
  if (host.front() == '[') {
    std::string inner(host.substr(1, host.size() - 2));
    in6_addr addr{};
    if (inner.empty() || inet_pton(AF_INET6, inner.c_str(), &addr) != 1) {
      return invalid("invalid IPv6 address in " + quoted(text));
    }
    return inner;
  }
  if (host.find(':') != std::string_view::npos) {
    bool looks_like_ipv6 = host.find_first_not_of("0123456789abcdefABCDEF:.") == host.npos;
    return invalid(looks_like_ipv6
                       ? "IPv6 address must be in brackets, like [::1]:443, in " + quoted(text)
                       : "invalid host in " + quoted(text));
  }
  for (char c : host) {
    if (!is_host_char(c)) {
      return invalid("invalid host in " + quoted(text));
    }
  }
  return std::string(host);
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  if (text.empty()) {
    return invalid("empty duration");
  }
  if (text.front() == '-') {
    return invalid(quoted(text) + " is negative");
  }
  if (!is_digit(text.front())) {
    return invalid(quoted(text) + " does not start with a number");
  }
  int64_t count = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  if (ec == std::errc::result_out_of_range) {
    return invalid(quoted(text) + " is too large");
  }
  if (unit.empty()) {
    return invalid(quoted(text) + " has no unit (" + std::string(UNITS_HINT) + ")");
  }
  if (unit.front() == '.') {
    return invalid(quoted(text) + " is not a whole number");
  }
  int64_t millis = unit_millis(unit);
  if (millis == 0) {
    return invalid(quoted(text) + " has an unknown unit " + quoted(unit) + " (" +
                   std::string(UNITS_HINT) + ")");
  }
  if (count > std::numeric_limits<Duration::rep>::max() / millis) {
    return invalid(quoted(text) + " is too large");
  }
  return Duration(count * millis);
}

Result<uint64_t> parse_rate(std::string_view text) {
  static constexpr std::pair<std::string_view, uint64_t> SIZES[] = {
      {"B/s", 1}, {"KiB/s", 1024}, {"MiB/s", 1024 * 1024}, {"GiB/s", 1024 * 1024 * 1024}};
  static constexpr std::string_view HINT = "a rate like 1KiB/s: B, KiB, MiB or GiB per second";
  if (text.empty() || !is_digit(text.front())) {
    return invalid(quoted(text) + " is not " + std::string(HINT));
  }
  uint64_t count = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  if (ec == std::errc::result_out_of_range) {
    return invalid(quoted(text) + " is too large");
  }
  for (const auto& [name, bytes] : SIZES) {
    if (unit == name) {
      if (count > std::numeric_limits<uint64_t>::max() / bytes) {
        return invalid(quoted(text) + " is too large");
      }
      return count * bytes;
    }
  }
  return invalid(quoted(text) + " is not " + std::string(HINT));
}

std::string format_duration(Duration d) {
  int64_t millis = d.count();
  if (millis == 0) {
    return "0s";
  }
  // Largest unit first; "ms" divides everything, so the loop always returns.
  for (auto it = std::rbegin(UNITS); it != std::rend(UNITS); ++it) {
    if (millis % it->second == 0) {
      return std::to_string(millis / it->second) + std::string(it->first);
    }
  }
  return std::to_string(millis) + "ms";
}

Result<HostPort> parse_host_port(std::string_view text) {
  if (text.empty()) {
    return invalid("empty address");
  }
  size_t host_end = 0;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return invalid("missing \"]\" in " + quoted(text));
    }
    host_end = close + 1;
    if (host_end == text.size() || text[host_end] != ':') {
      return invalid("missing port after \"]\" in " + quoted(text));
    }
  } else {
    host_end = text.rfind(':');
    if (host_end == std::string_view::npos) {
      return invalid("missing port in " + quoted(text) + " (expected host:port)");
    }
  }
  HostPort out;
  if (!parse_port(text.substr(host_end + 1), &out.port)) {
    return invalid("invalid port in " + quoted(text));
  }
  auto host = parse_host(text.substr(0, host_end), text);
  if (!host) {
    return host.error();
  }
  out.host = std::move(*host);
  return out;
}

}  // namespace fd::config
