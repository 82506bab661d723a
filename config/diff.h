#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace fd::config {

// What a reload changes, for its log line and for deciding what to restart. Positions in the
// file (marks) do not count as changes.
struct ConfigDiff {
  std::vector<std::string> listeners_added;    // addresses as written in the new file
  std::vector<std::string> listeners_removed;  // addresses as written in the old file
  std::vector<std::string> listeners_changed;  // same address, other settings (tls, redirect)
  std::vector<std::string> upstreams_added;
  std::vector<std::string> upstreams_removed;
  std::vector<std::string> upstreams_changed;  // same name, other servers or settings
  bool routes_changed = false;
  bool tls_changed = false;   // min_version or the list of static certificate files
  bool acme_changed = false;  // anything in tls.acme: the ACME side restarts
  std::vector<std::string> acme_domains_added;
  std::vector<std::string> acme_domains_removed;
  // Settings that only take effect at the next start (the worker thread count).
  std::vector<std::string> restart_needed;
};

// Compares two complete configurations. Pure function.
ConfigDiff diff(const Config& before, const Config& after);

}  // namespace fd::config
