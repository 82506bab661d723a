#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "config/load.h"

namespace fd::config {

// Expands every ${VAR} and ${VAR:-default} in |text| from |env|, in one pass: expanded values
// are not expanded again, and a "$" not followed by "{" is kept as written. Like the shell
// (and compose), the default also applies when the variable is set but empty. An unset
// variable without default, a bad name or an unterminated "${" is an error.
Result<std::string> expand_variables(std::string_view text, const Environment& env);

}  // namespace fd::config
