#pragma once

#include <string>

// Readiness and state notifications to the service manager (systemd's sd_notify protocol), for
// deploy/frontdoor.service's Type=notify. Every function is a no-op when NOTIFY_SOCKET is unset,
// i.e. when frontdoor is not started by systemd, so callers need no condition of their own. The
// variable is left in the environment because a reload notifies again. A failure to send is
// logged and otherwise ignored: the proxy keeps serving, and systemd reports the missing
// notification itself (start timeout). Main thread only (sd_notify is not documented as
// thread-safe, and these mark main-loop transitions anyway).

namespace fd::proxy {

// Sends "READY=1" with "STATUS=|status|": startup, or a reload, has finished and the proxy
// serves. systemd considers the unit started (or reloaded) when this arrives.
void notify_ready(const std::string& status);

// Sends "RELOADING=1" with "MONOTONIC_USEC=" the current CLOCK_MONOTONIC time in microseconds,
// at the start of handling SIGHUP. systemd shows the unit as "reloading" until the next
// notify_ready(), which every reload (applied or rejected) must send. The timestamp lets systemd
// 253 and later match this reload to the one it requested; 252 ignores it.
void notify_reloading();

// Sends "STOPPING=1" when a graceful shutdown begins, so that systemctl shows "deactivating"
// while requests in flight drain.
void notify_stopping();

// Sends "STATUS=|status|", a free-form line shown by `systemctl status`.
void notify_status(const std::string& status);

}  // namespace fd::proxy
