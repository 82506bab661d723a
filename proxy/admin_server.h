#pragma once

#include <functional>
#include <list>
#include <memory>

#include "common/result.h"
#include "config/config.h"
#include "proxy/admin_view.h"
#include "proxy/event_loop.h"
#include "proxy/listener.h"

namespace fd::proxy {

// The admin listener: plain HTTP/1.1 on its own address (loopback by default), never reachable
// through the public listeners. GET /status (JSON), /metrics (Prometheus text), /ready (200, or
// 503 while draining). One request per connection. Main thread.
class AdminServer {
 public:
  // |view| gathers the current state; called once per /status or /metrics request.
  AdminServer(EventLoop& loop, std::function<AdminView()> view);
  ~AdminServer();

  // Binds |admin.address|. Startup fails (exit 2) when it cannot; on a reload, the previous
  // address keeps serving when it cannot.
  Result<void> listen(const config::Admin& admin);
  // Stops accepting (a reload removed the admin section); open requests finish.
  void close();

 private:
  class Connection;
  void accept(int fd);
  void remove(Connection* conn);

  EventLoop& loop_;
  std::function<AdminView()> view_;
  std::unique_ptr<Listener> listener_;
  std::list<std::unique_ptr<Connection>> conns_;
};

}  // namespace fd::proxy
