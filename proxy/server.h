#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "config/config.h"
#include "proxy/event_loop.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

namespace fd::proxy {

// The main thread: builds the runtime snapshot, opens the listening sockets, starts the workers
// and handles signals (SIGTERM/SIGINT: graceful shutdown bounded by shutdown_timeout).
class Server {
 public:
  explicit Server(std::shared_ptr<const config::Config> config);
  ~Server();

  // Runs until shut down. Returns the process exit code: 0 after a clean shutdown, 2 when
  // startup fails (unresolvable upstream, bad certificate, port in use).
  int run();

 private:
  bool open_sockets(unsigned workers, std::vector<std::vector<ListenSocket>>* out);
  void begin_shutdown(const char* signal_name);
  void check_workers();
  static void on_signal(evutil_socket_t sig, short, void* arg);

  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<const RuntimeSnapshot> snapshot_;
  EventLoop loop_;
  std::atomic<uint32_t> connections_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<event*> signal_events_;
  bool shutting_down_ = false;
  bool forced_ = false;
  Timer poll_timer_;
  Timer deadline_timer_;
};

}  // namespace fd::proxy
