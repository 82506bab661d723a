#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proxy/balancer.h"
#include "proxy/event_loop.h"
#include "proxy/listener.h"
#include "proxy/proxy_stats.h"
#include "proxy/snapshot.h"
#include "proxy/tls_context.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_server.h"

namespace fd::proxy {

class DownstreamConnection;

// A listening socket made by the main thread for one worker, and the config listener it serves.
struct ListenSocket {
  int fd;
  size_t listener_index;  // into Config::listeners
};

// A thread with its own event loop, its own SO_REUSEPORT listening sockets, its connections and
// its upstream pool. Other threads talk to it only through the request_* calls, which post().
class Worker {
 public:
  // |servers| holds each upstream group's first server list; |tls| the certificates (null
  // without TLS listeners); |challenges| the open ACME challenges (null without ACME); |stats|
  // is the process's. |challenges| and |stats| outlive the worker.
  Worker(unsigned id, std::shared_ptr<const RuntimeSnapshot> snapshot,
         std::vector<ListenSocket> sockets, std::vector<ServerListPtr> servers,
         std::shared_ptr<const TlsContextSet> tls, const acme::ChallengeStore* challenges,
         ProxyStats& stats);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();

  // Graceful stop: close listeners and idle connections, let exchanges finish, then exit.
  // Any thread.
  void request_drain();
  // Hard stop: close every connection now and exit. Any thread.
  void request_stop();
  // Replaces the server list of upstream group |group| (re-resolution). Any thread.
  void request_servers(size_t group, ServerListPtr servers);
  // Replaces the certificates new handshakes use; open connections keep theirs. Any thread.
  void request_tls(std::shared_ptr<const TlsContextSet> tls);
  // True once the thread's loop has returned. Any thread.
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  // Connections this worker cut in request_stop(). Read after join().
  size_t cut_connections() const { return cut_; }

  // --- Worker thread only ---
  EventLoop& loop() { return loop_; }
  UpstreamPool& pool() { return pool_; }
  const std::shared_ptr<const RuntimeSnapshot>& snapshot() const { return snapshot_; }
  // A random 32-hex-digit request id.
  std::string next_request_id();
  // An available server of |group| not in |tried|, chosen by the group's balance policy;
  // nullptr when there is none.
  std::shared_ptr<UpstreamServer> pick_server(size_t group,
                                              const std::vector<const UpstreamServer*>& tried);
  ProxyStats& stats() { return stats_; }
  const std::shared_ptr<const TlsContextSet>& tls() const { return tls_; }
  const acme::ChallengeStore* challenges() const { return challenges_; }
  // Takes ownership of the accepted |fd|.
  void accept(int fd, const sockaddr* peer, size_t listener_index);
  // Unlinks |conn| and defer-deletes it. Called by the connection's single close path.
  void remove(DownstreamConnection* conn);
  bool draining() const { return draining_; }

 private:
  // One upstream group as this worker sees it.
  struct GroupState {
    ServerListPtr servers;
    std::vector<int64_t> weighted_current;  // smooth weighted round-robin state
  };

  void run();
  void drain();
  void stop();
  void maybe_exit();

  unsigned id_;
  std::shared_ptr<const RuntimeSnapshot> snapshot_;
  std::vector<ListenSocket> sockets_;
  std::shared_ptr<const TlsContextSet> tls_;
  const acme::ChallengeStore* challenges_;
  ProxyStats& stats_;
  EventLoop loop_;
  UpstreamPool pool_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::list<std::unique_ptr<DownstreamConnection>> conns_;
  std::vector<GroupState> groups_;
  std::vector<Candidate> candidates_;  // reused by pick_server
  std::mt19937_64 rng_;
  bool draining_ = false;
  size_t cut_ = 0;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace fd::proxy
