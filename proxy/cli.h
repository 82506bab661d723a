#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace fd::proxy {

// The command line, parsed. Exactly one mode is set.
struct CommandLine {
  enum class Mode { run, check, version, quick, help, acme_status, health };
  Mode mode = Mode::run;
  std::string config_path;            // -c/--config, or FRONTDOOR_CONFIG
  std::string quick_from;             // proxy --from ADDR
  std::vector<std::string> quick_to;  // proxy --to HOST:PORT,...
  std::string health_url = "http://127.0.0.1:9901/ready";  // health --url
  std::chrono::milliseconds health_timeout{2000};          // health --timeout
};

// Parses |args| (without argv[0]). |env_config| is FRONTDOOR_CONFIG if set. On a usage error
// returns nullopt and sets |error|.
std::optional<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                              const std::optional<std::string>& env_config,
                                              std::string* error);

// The usage text printed by --help and after usage errors.
const char* usage();

}  // namespace fd::proxy
