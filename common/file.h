#pragma once

#include <string>

#include "common/result.h"

namespace fd {

// Reads the whole file at |path|. On failure the error message is strerror(errno), e.g.
// "Permission denied", for callers to prefix with what they were reading.
Result<std::string> read_file(const std::string& path);

}  // namespace fd
