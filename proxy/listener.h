#pragma once

#include <event2/listener.h>

#include <functional>

#include "proxy/event_loop.h"

namespace fd::proxy {

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

 private:
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* addr, int len, void* arg);
  static void on_error(evconnlistener*, void* arg);

  AcceptFn on_accept_;
  evconnlistener* listener_;
};

}  // namespace fd::proxy
