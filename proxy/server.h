#pragma once

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "acme/cert_store.h"
#include "acme/challenge_store.h"
#include "acme/manager.h"
#include "config/config.h"
#include "proxy/admin_server.h"
#include "proxy/admin_view.h"
#include "proxy/event_loop.h"
#include "proxy/health_checker.h"
#include "proxy/proxy_stats.h"
#include "proxy/snapshot.h"
#include "proxy/ticket_keys.h"
#include "proxy/upstream_registry.h"
#include "proxy/worker.h"

namespace fd::proxy {

// The main thread: builds the runtime snapshot, opens the listening sockets, starts the workers,
// runs the upstream registry (re-resolution), the health checker and the admin listener, and
// handles signals (SIGHUP: reload; SIGTERM/SIGINT: graceful shutdown bounded by
// shutdown_timeout).
class Server {
 public:
  explicit Server(std::shared_ptr<const config::Config> config);
  ~Server();

  // Runs until shut down. Returns the process exit code: 0 after a clean shutdown, 2 when
  // startup fails (unresolvable upstream, bad certificate, port in use).
  int run();

 private:
  // Opens one socket per worker for each listener of |config| whose listen_key() is not in
  // |keep|: (*out)[worker][listener] is the fd, or -1 for a kept one. On failure closes what
  // it opened.
  Result<void> open_sockets(const config::Config& config, const std::vector<std::string>& keep,
                            std::vector<std::vector<int>>* out) const;
  // Sends a group's new server list to the workers and the health checker.
  void publish_servers(size_t group, const ServerListPtr& servers);
  // A callback for each worker to run once it has the new server lists; the last one marks
  // the servers the registry retired as removed.
  std::function<void()> after_all_workers();
  // Builds the certificates |config| names (static files, read now, and the ACME store's
  // current certificates for its managed names).
  Result<std::shared_ptr<const TlsContextSet>> build_tls(const config::Config& config);
  // Starts, restarts or stops the ACME side to match |config|.
  void configure_acme(const config::Config& config);
  // SIGHUP: validates the file again and, if it is fine, switches to it.
  void reload();
  // The fallible part of a reload, then the switch. Errors go to |errors|; on success returns
  // what changed.
  std::optional<nlohmann::json> switch_config(std::vector<std::string>* errors);
  // A managed certificate changed: new handshakes on every worker use the new set.
  void install_managed_certificates();
  AdminView admin_view() const;
  void begin_shutdown(const char* signal_name);
  void start_drain();
  void check_workers();
  static void on_signal(evutil_socket_t sig, short, void* arg);

  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<const RuntimeSnapshot> snapshot_;
  unsigned worker_count_ = 0;
  std::vector<std::string> listen_keys_;  // of config_'s listeners, in order
  ConfigView reloads_;
  EventLoop loop_;
  ProxyStats stats_;
  std::string started_at_;
  acme::CertStore cert_store_;
  acme::ChallengeStore challenges_;
  // Session ticket keys of every TLS context: a new one every hour, three kept, so a ticket
  // resumes for two to three hours (OpenSSL's ticket lifetime hint is two). Declared before
  // the TLS sets and workers, so it outlives every SSL_CTX that points at it.
  static constexpr size_t TICKET_KEYS_KEPT = 3;
  TicketKeys tickets_{TICKET_KEYS_KEPT};
  std::shared_ptr<const TlsContextSet> tls_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<acme::Manager> acme_;
  HealthChecker checker_;
  UpstreamRegistry registry_;
  AdminServer admin_;
  std::vector<event*> signal_events_;
  bool shutting_down_ = false;
  bool forced_ = false;
  bool drain_started_ = false;
  Timer poll_timer_;
  Timer delay_timer_;
  Timer deadline_timer_;
  Timer ticket_timer_;
};

}  // namespace fd::proxy
