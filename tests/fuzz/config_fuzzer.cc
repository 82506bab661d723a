// YAML text through the config loader: parsing, ${VAR} expansion, types, units, unknown keys and
// validation. Whatever the text, the loader must answer with either a config or errors, each
// error with a message, and a config it accepts must load the same way twice (a reload of an
// unchanged file must be a no-op).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/diff.h"
#include "config/load.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using fd::fuzz::check;

std::optional<std::string> environment(const std::string& name) {
  if (name == "FUZZ_PORT") {
    return "8443";
  }
  if (name == "FUZZ_HOST") {
    return "app.internal";
  }
  if (name == "FUZZ_EMPTY") {
    return "";
  }
  return std::nullopt;
}

bool unchanged(const fd::config::ConfigDiff& d) {
  return d.listeners_added.empty() && d.listeners_removed.empty() &&
         d.listeners_changed.empty() && d.upstreams_added.empty() &&
         d.upstreams_removed.empty() && d.upstreams_changed.empty() && !d.routes_changed &&
         !d.tls_changed && !d.acme_changed && d.acme_domains_added.empty() &&
         d.acme_domains_removed.empty() && d.restart_needed.empty();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto first = fd::config::load_string(yaml, "fuzz.yaml", environment);
  check(first.config.has_value() == first.errors.empty(),
        "the loader gave both a config and errors, or neither");
  for (const auto& error : first.errors) {
    check(!error.message.empty() && error.line >= 0 && error.col >= 0,
          "an error without a message or with a negative position");
    check(!fd::config::to_string(error).empty(), "an error prints as nothing");
  }
  if (!first.config) {
    return 0;
  }
  auto second = fd::config::load_string(yaml, "fuzz.yaml", environment);
  check(second.config.has_value(), "the same text failed the second time");
  check(unchanged(fd::config::diff(*first.config, *second.config)),
        "the same text loaded twice differs");
  return 0;
}
