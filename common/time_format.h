#pragma once

#include <ctime>
#include <string>

namespace fd {

// RFC 3339 UTC form of |t| to the second, e.g. "2026-11-25T11:17:12Z".
std::string format_rfc3339(std::time_t t);

}  // namespace fd
