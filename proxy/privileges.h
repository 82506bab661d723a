#pragma once

#include <string>

#include "common/result.h"

namespace fd::proxy {

// Top-level `user:`: started as root to bind 80/443, frontdoor becomes |user| (its uid, primary
// group and supplementary groups) once the listeners are open, before it reads keys or starts
// any thread. It keeps only CAP_NET_BIND_SERVICE, so that a reload can still open a low port.
// |state_dir| (the ACME storage) is created if missing and handed to |user|, keys private.
// Not root: fine when already running as |user|, an error otherwise.
Result<void> become_user(const std::string& user, const std::string& state_dir);

}  // namespace fd::proxy
