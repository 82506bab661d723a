#include "common/time_format.h"

#include <algorithm>

namespace fd {

std::string format_rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::chrono::system_clock::time_point to_system_time(std::time_t t) {
  constexpr std::time_t YEAR_2200 = 7258118400;
  return std::chrono::system_clock::from_time_t(std::clamp<std::time_t>(t, 0, YEAR_2200));
}

}  // namespace fd
