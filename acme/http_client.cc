#include "acme/http_client.h"

#include <time.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>

#include "common/time_format.h"

namespace fd::acme {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// Non-negative decimal of at most |max_digits| digits, the whole of |text|.
std::optional<int64_t> parse_digits(std::string_view text, size_t max_digits) {
  if (text.empty() || text.size() > max_digits) {
    return std::nullopt;
  }
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  return value;
}

int month_index(std::string_view name) {
  static constexpr std::array<const char*, 12> MONTHS = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (size_t i = 0; i < MONTHS.size(); ++i) {
    if (name == MONTHS[i]) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool valid_day_name(std::string_view name) {
  static constexpr std::array<const char*, 7> DAYS = {"Mon", "Tue", "Wed", "Thu",
                                                      "Fri", "Sat", "Sun"};
  for (const char* day : DAYS) {
    if (name == day) {
      return true;
    }
  }
  return false;
}

// IMF-fixdate, the HTTP-date every current server sends: "Sun, 06 Nov 1994 08:49:37 GMT".
// Parsed by hand rather than with strptime so the process locale cannot change the month names.
std::optional<std::time_t> parse_imf_fixdate(std::string_view text) {
  if (text.size() != 29 || text.substr(3, 2) != ", " || text[7] != ' ' || text[11] != ' ' ||
      text[16] != ' ' || text[19] != ':' || text[22] != ':' || text.substr(25) != " GMT") {
    return std::nullopt;
  }
  if (!valid_day_name(text.substr(0, 3))) {
    return std::nullopt;
  }
  auto day = parse_digits(text.substr(5, 2), 2);
  int month = month_index(text.substr(8, 3));
  auto year = parse_digits(text.substr(12, 4), 4);
  auto hour = parse_digits(text.substr(17, 2), 2);
  auto minute = parse_digits(text.substr(20, 2), 2);
  auto second = parse_digits(text.substr(23, 2), 2);
  if (!day || month < 0 || !year || !hour || !minute || !second || *day < 1 || *day > 31 ||
      *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = static_cast<int>(*year) - 1900;
  tm.tm_mon = month;
  tm.tm_mday = static_cast<int>(*day);
  tm.tm_hour = static_cast<int>(*hour);
  tm.tm_min = static_cast<int>(*minute);
  tm.tm_sec = static_cast<int>(*second);
  std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) {
    return std::nullopt;
  }
  return t;
}

// The two obsolete HTTP-date forms recipients must still accept (RFC 9110 5.6.7): RFC 850
// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994"). They are rare, so
// strptime (C locale names) is good enough here.
std::optional<std::time_t> parse_obsolete_date(std::string_view text) {
  std::string copy(text);
  for (const char* format : {"%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(copy.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') {
      std::time_t t = timegm(&tm);
      if (t != static_cast<std::time_t>(-1)) {
        return t;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> HttpResponse::header(const std::string& name) const {
  // lower_bound, not find: multimap keeps equal keys in insertion order, and find may return any.
  auto it = headers.lower_bound(name);
  if (it == headers.end() || it->first != name) {
    return std::nullopt;
  }
  return it->second;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) {
    return std::nullopt;
  }
  if (value.front() >= '0' && value.front() <= '9') {
    // Ten digits are over 300 years: anything longer is garbage, and this keeps int64 safe.
    auto seconds = parse_digits(value, 10);
    if (!seconds) {
      return std::nullopt;
    }
    return std::chrono::seconds(*seconds);
  }
  auto when = parse_imf_fixdate(value);
  if (!when) {
    when = parse_obsolete_date(value);
  }
  if (!when) {
    return std::nullopt;
  }
  // Rounded up: waking a fraction of a second early would be asking before the server said to.
  auto delta =
      std::chrono::ceil<std::chrono::seconds>(to_system_time(*when) - now);
  return delta.count() > 0 ? delta : std::chrono::seconds(0);
}

}  // namespace fd::acme

