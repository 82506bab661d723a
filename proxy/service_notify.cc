#include "proxy/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>

#include "common/log.h"

namespace fd::proxy {
namespace {

// The protocol is newline-separated KEY=VALUE assignments, so a newline inside a status would
// start a new (possibly meaningful) assignment; it becomes a space.
std::string one_line(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return out;
}

void send(const std::string& state) {
  // unset_environment = 0: a later reload or shutdown notifies through the same variable.
  int rc = sd_notify(0, state.c_str());
  if (rc < 0) {
    log::warn("sd_notify failed", {{"state", state}, {"error", std::strerror(-rc)}});
  }
}

}  // namespace

void notify_ready(const std::string& status) {
  send("READY=1\nSTATUS=" + one_line(status));
}

void notify_reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t usec =
      static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void notify_stopping() {
  send("STOPPING=1");
}

void notify_status(const std::string& status) {
  send("STATUS=" + one_line(status));
}

}  // namespace fd::proxy
