#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proxy/balancer.h"
#include "proxy/event_loop.h"
#include "proxy/header_rewrite.h"
#include "proxy/listener.h"
#include "proxy/proxy_stats.h"
#include "proxy/snapshot.h"
#include "proxy/tls_context.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_server.h"

namespace fd::proxy {

class DownstreamConnection;

// What a worker runs with, handed over whole at start and at each reload so that no request
// sees a new snapshot with old server lists.
struct WorkerConfig {
  std::shared_ptr<const RuntimeSnapshot> snapshot;
  std::shared_ptr<const TlsContextSet> tls;  // null without TLS listeners
  std::vector<ServerListPtr> servers;        // one per upstream group of |snapshot|
  // One per listener of the snapshot's config: a socket the main thread opened for this worker
  // (owned by the worker from now on), or -1 to keep the socket it already has on that
  // listen_key(). Sockets not named here any more are closed.
  std::vector<int> sockets;
};

// A thread with its own event loop, its own SO_REUSEPORT listening sockets, its connections and
// its upstream pool. Other threads talk to it only through the request_* calls, which post().
class Worker {
 public:
  // |initial| is the first configuration (all its sockets new); |challenges| the open ACME
  // challenges; |stats| is the process's. |challenges| and |stats| outlive the worker.
  Worker(unsigned id, WorkerConfig initial, const acme::ChallengeStore& challenges,
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
  // Switches to |next| (a reload): new connections and requests use it, connections on a
  // listener that is gone drain, and exchanges still on an older configuration after its
  // shutdown_timeout are moved onto the current one or cut. Any thread.
  // |applied| runs on the worker thread once it has switched.
  void request_reload(WorkerConfig next, std::function<void()> applied);
  // Replaces the server list of upstream group |group| (re-resolution); |applied| runs on the
  // worker thread once it has. Any thread.
  void request_servers(size_t group, ServerListPtr servers, std::function<void()> applied);
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
  RequestId next_request_id();
  // An available server of upstream |group| of |snapshot| not in |tried|, chosen by the
  // group's balance policy; nullptr when there is none. A request still running on an older
  // snapshot gets a server of the current upstream of the same name (none if it is gone).
  std::shared_ptr<UpstreamServer> pick_server(const RuntimeSnapshot& snapshot, size_t group,
                                              const std::vector<const UpstreamServer*>& tried);
  ProxyStats& stats() { return stats_; }
  const std::shared_ptr<const TlsContextSet>& tls() const { return tls_; }
  const acme::ChallengeStore& challenges() const { return challenges_; }
  // Takes ownership of the accepted |fd|.
  void accept(int fd, const sockaddr* peer, size_t listener_index);
  // Unlinks |conn| and defer-deletes it. Called by the connection's single close path.
  void remove(DownstreamConnection* conn);

 private:
  // One upstream group as this worker sees it.
  struct GroupState {
    ServerListPtr servers;
    std::vector<int64_t> weighted_current;  // smooth weighted round-robin state
  };

  // An open listening socket and the index of its listener in the current configuration.
  struct ListenerSlot {
    std::unique_ptr<Listener> listener;
    size_t index = 0;
  };

  void run();
  // Installs |next|; |reload| schedules the retirement of the configurations before it.
  void apply(WorkerConfig next, bool reload);
  // Opens a Listener on |fd| (owned from now on) for listener |index|; false if it failed.
  bool add_listener(std::map<std::string, ListenerSlot>* into, const std::string& key, int fd,
                    size_t index);
  // Retires what is older than the generation at the head of |retiring_| once it is due.
  void retire_due();
  // Closes pooled idle connections to servers no group lists any more.
  void drop_unlisted_idle();
  void drain();
  void stop();
  void maybe_exit();

  unsigned id_;
  WorkerConfig initial_;  // until run() applies it
  std::shared_ptr<const RuntimeSnapshot> snapshot_;
  std::shared_ptr<const TlsContextSet> tls_;
  const acme::ChallengeStore& challenges_;
  ProxyStats& stats_;
  EventLoop loop_;
  UpstreamPool pool_;
  // By listen_key(); map nodes keep their address, which the accept callbacks rely on.
  std::map<std::string, ListenerSlot> listeners_;
  // Generations installed by reloads, oldest first, and when the ones before each must go.
  std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>> retiring_;
  std::list<std::unique_ptr<DownstreamConnection>> conns_;
  std::vector<GroupState> groups_;
  std::vector<Candidate> candidates_;  // reused by pick_server
  std::mt19937_64 rng_;
  bool draining_ = false;
  size_t cut_ = 0;
  std::atomic<bool> finished_{false};
  Timer retire_timer_;
  // At max_connections the listeners stop accepting; they resume when a connection of this
  // worker closes, or at the next poll for closes in other workers (the limit is shared).
  void set_accepting(bool on);
  void resume_accepting_if_below_limit();
  bool accept_paused_ = false;
  Timer accept_poll_;
  // Connections accepted when another worker had just taken the last slot: they wait here,
  // like those in the backlog, instead of being refused.
  struct Deferred {
    int fd;
    sockaddr_storage peer;
    size_t listener_index;
  };
  std::deque<Deferred> deferred_;
  void close_deferred();
  std::thread thread_;
};

}  // namespace fd::proxy
