#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace fd {

// RFC 3339 UTC form of |t| to the second, e.g. "2026-11-25T11:17:12Z".
std::string format_rfc3339(std::time_t t);

// system_clock::from_time_t without its overflow. system_clock counts nanoseconds in 64 bits,
// which ends in 2262, and times come from outside: certificates valid until 9999 (RFC 5280
// §4.1.2.5 gives that date a meaning), a CA's Retry-After or renewal window. |t| is clamped to
// 1970..2200, far enough inside that sums and differences of two such times cannot overflow.
std::chrono::system_clock::time_point to_system_time(std::time_t t);

}  // namespace fd
