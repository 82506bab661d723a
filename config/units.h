#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "config/config.h"

namespace fd::config {

// Parses a duration with a unit: "250ms", "5s", "2m", "1h", "30d". The number is a non-negative
// integer; there is no default unit ("5" is an error). Overflow is an error.
Result<Duration> parse_duration(std::string_view text);

// Parses "host:port", "[v6addr]:port" or "*:port" / ":port" (any address). The port must be
// 1..65535; a bare host without port is an error. The host is returned without brackets.
Result<HostPort> parse_host_port(std::string_view text);

// Parses a transfer rate: a non-negative integer, a size unit B, KiB, MiB or GiB, and "/s":
// "1KiB/s", "512B/s". Returns bytes per second; "0B/s" is 0.
Result<uint64_t> parse_rate(std::string_view text);

// Writes |d| in the largest unit that divides it exactly: "2s", "90s", "5m", "1500ms"; "0s" for
// zero. For d >= 0, parse_duration() reads the result back to |d|. For messages and logs.
std::string format_duration(Duration d);

}  // namespace fd::config
