#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace fd::config {

// One problem in a config file; printed as "FILE:LINE:COL: message", or "FILE: message" when
// it has no position (line 0: unreadable file, missing top-level key).
struct Diagnostic {
  std::string file;
  int line = 0;
  int col = 0;
  std::string message;
};

std::string to_string(const Diagnostic& d);

// Looks up an environment variable; std::nullopt when it is not set. Tests pass their own.
using Environment = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv).
Environment process_environment();

struct LoadResult {
  std::optional<Config> config;  // set only when |errors| is empty
  std::vector<Diagnostic> errors;
};

// Reads, parses and validates the YAML config at |path|: ${VAR} / ${VAR:-default} expansion in
// every scalar, types, units, unknown keys, then validate(). Collects every problem it can find
// instead of stopping at the first. Never throws. Called on the main thread.
LoadResult load_file(const std::string& path, const Environment& env);

// Same as load_file for YAML text already in memory; |source| names it in diagnostics.
LoadResult load_string(std::string_view yaml, const std::string& source, const Environment& env);

}  // namespace fd::config
