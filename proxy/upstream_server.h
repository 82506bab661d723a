#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace fd::proxy {

// One resolved upstream address. Shared (shared_ptr) by the snapshot that lists it and by the
// per-worker pools that hold connections to it; counters are atomics any worker may update.
struct UpstreamServer {
  std::string address;  // numeric "ip:port" ("[v6]:port"), as logged and reported
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> requests{0};
};

}  // namespace fd::proxy
