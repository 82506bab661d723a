#pragma once

#include <event2/listener.h>

#include <functional>
#include <string>

#include "common/result.h"
#include "config/config.h"
#include "proxy/event_loop.h"

namespace fd::proxy {

// A bound, listening, non-blocking socket on |endpoint| (|address| is its text, for errors).
// |reuse_port| sets SO_REUSEPORT so each worker can have its own socket on the address.
// Main thread, at startup.
Result<int> open_listen_socket(const config::HostPort& endpoint, const std::string& address,
                               bool reuse_port);

// The identity of a listening address across reloads: the same key keeps its sockets.
std::string listen_key(const config::HostPort& endpoint);

// Accepts on one already-bound, listening socket (owned from now on) and hands each new
// non-blocking fd to |on_accept|. Accepting stops when the Listener is destroyed.
class Listener {
 public:
  using AcceptFn = std::function<void(int fd, const sockaddr* peer)>;

  Listener(EventLoop& loop, int fd, AcceptFn on_accept);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  bool ok() const { return listener_ != nullptr; }
  // Stops or resumes accepting; connections meanwhile wait in the kernel's backlog.
  void set_accepting(bool on);

 private:
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void on_error(evconnlistener*, void* arg);

  AcceptFn on_accept_;
  evconnlistener* listener_;
};

}  // namespace fd::proxy
