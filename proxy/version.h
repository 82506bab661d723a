#pragma once

namespace fd::proxy {

// The frontdoor version, shown by --version, /status and the health checks' User-Agent.
inline constexpr const char* VERSION = "0.1.0";

}  // namespace fd::proxy
