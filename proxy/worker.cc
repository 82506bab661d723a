#include "proxy/worker.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "proxy/access_log_batch.h"
#include "proxy/downstream_connection.h"

namespace fd::proxy {
namespace {

// How often a worker paused at max_connections looks whether other workers freed a slot.
constexpr std::chrono::milliseconds ACCEPT_POLL_INTERVAL{100};

std::string peer_ip(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    }
  } else if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  }
  return buf;
}

}  // namespace

Worker::Worker(unsigned id, WorkerConfig initial, const acme::ChallengeStore& challenges,
               ProxyStats& stats)
    : id_(id),
      initial_(std::move(initial)),
      snapshot_(initial_.snapshot),
      tls_(initial_.tls),
      challenges_(challenges),
      stats_(stats),
      pool_(loop_),
      rng_(std::random_device{}()),
      retire_timer_(loop_, [this] { retire_due(); }),
      accept_poll_(loop_, [this] { resume_accepting_if_below_limit(); }) {}

Worker::~Worker() {
  join();
  close_deferred();
  for (int fd : initial_.sockets) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Worker::request_drain() {
  loop_.post([this] { drain(); });
}

void Worker::request_stop() {
  loop_.post([this] { stop(); });
}

void Worker::request_reload(WorkerConfig next, std::function<void()> applied) {
  loop_.post([this, next = std::move(next), applied = std::move(applied)]() mutable {
    apply(std::move(next), true);
    applied();
  });
}

void Worker::request_servers(size_t group, ServerListPtr servers, std::function<void()> applied) {
  loop_.post([this, group, servers = std::move(servers), applied = std::move(applied)] {
    groups_[group] = GroupState{servers, {}};
    drop_unlisted_idle();
    applied();
  });
}

void Worker::drop_unlisted_idle() {
  std::vector<ServerListPtr> lists;
  for (const auto& g : groups_) {
    lists.push_back(g.servers);
  }
  pool_.keep_only(lists);
}

void Worker::request_tls(std::shared_ptr<const TlsContextSet> tls) {
  loop_.post([this, tls = std::move(tls)] { tls_ = tls; });
}

std::shared_ptr<UpstreamServer> Worker::pick_server(
    const RuntimeSnapshot& snapshot, size_t group,
    const std::vector<const UpstreamServer*>& tried) {
  if (&snapshot != snapshot_.get()) {
    auto current = snapshot_->find_group(snapshot.group(group).settings->name);
    if (!current) {
      return nullptr;
    }
    group = *current;
  }
  GroupState& gs = groups_[group];
  const ServerList& list = *gs.servers;
  if (list.empty()) {
    return nullptr;
  }
  int64_t now = steady_now_ms();
  bool equal_weights = true;
  candidates_.resize(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const UpstreamServer& s = *list[i];
    bool untried = std::find(tried.begin(), tried.end(), &s) == tried.end();
    candidates_[i] =
        Candidate{s.weight, s.active.load(std::memory_order_relaxed), untried && s.available(now)};
    equal_weights = equal_weights && s.weight == list[0]->weight;
  }
  const UpstreamGroup& g = snapshot_->group(group);
  std::optional<size_t> index;
  switch (g.balance) {
    case Balance::least_conn:
      index = pick_least_conn(candidates_, g.counters->round_robin.ticket());
      break;
    case Balance::random_two:
      index = pick_random_two(candidates_, &rng_);
      break;
    case Balance::round_robin:
      // Equal weights use the process-wide position, so the order holds across workers.
      index = equal_weights ? pick_round_robin(candidates_, g.counters->round_robin.ticket())
                            : pick_smooth_weighted(candidates_, &gs.weighted_current);
      break;
  }
  return index ? list[*index] : nullptr;
}

void Worker::run() {
  std::string name = "fd-worker-" + std::to_string(id_);
  pthread_setname_np(pthread_self(), name.c_str());
  WorkerConfig initial = std::move(initial_);
  initial_.sockets.clear();
  // Declared before anything that logs requests below, so it writes their lines last.
  AccessLogBatch access_lines(loop_);
  apply(std::move(initial), false);
  loop_.run();
  cut_ = conns_.size();
  std::vector<DownstreamConnection*> left;
  for (auto& c : conns_) {
    left.push_back(c.get());
  }
  for (auto* c : left) {
    c->close("shutdown timeout");
  }
  listeners_.clear();
  pool_.clear();
  finished_.store(true, std::memory_order_release);
}

void Worker::apply(WorkerConfig next, bool reload) {
  snapshot_ = std::move(next.snapshot);
  tls_ = std::move(next.tls);
  groups_.clear();
  for (auto& list : next.servers) {
    groups_.push_back(GroupState{std::move(list), {}});
  }
  drop_unlisted_idle();

  const auto& listeners = snapshot_->config().listeners;
  std::map<std::string, ListenerSlot> kept;
  for (size_t i = 0; i < listeners.size() && i < next.sockets.size(); ++i) {
    std::string key = listen_key(listeners[i].endpoint);
    if (next.sockets[i] >= 0) {
      add_listener(&kept, key, next.sockets[i], i);
      continue;
    }
    auto node = listeners_.extract(key);
    if (node.empty()) {
      log::error("reload lost a listening socket", {{"worker", id_}, {"address", key}});
      continue;
    }
    node.mapped().index = i;
    kept.insert(std::move(node));
  }
  // What is left in listeners_ was removed from the configuration: stop accepting on it.
  listeners_ = std::move(kept);
  if (draining_) {
    listeners_.clear();
  }
  // Their listener indexes are the old configuration's; a reload at the limit is rare enough
  // to let them go.
  close_deferred();
  // A reload may have raised max_connections.
  resume_accepting_if_below_limit();

  std::vector<DownstreamConnection*> all;
  for (auto& c : conns_) {
    all.push_back(c.get());
  }
  for (auto* c : all) {
    c->adopt(snapshot_);
    if (listeners_.count(c->listener_key()) == 0) {
      c->drain();
    }
  }
  if (!reload) {
    return;
  }
  auto due = std::chrono::steady_clock::now() + snapshot_->config().shutdown_timeout;
  retiring_.emplace_back(snapshot_->generation(), due);
  if (!retire_timer_.armed()) {
    retire_timer_.arm(snapshot_->config().shutdown_timeout);
  }
}

bool Worker::add_listener(std::map<std::string, ListenerSlot>* into, const std::string& key, int fd,
                          size_t index) {
  auto [it, inserted] = into->try_emplace(key);
  if (!inserted) {
    ::close(fd);
    return false;
  }
  ListenerSlot* slot = &it->second;
  slot->index = index;
  slot->listener = std::make_unique<Listener>(
      loop_, fd,
      [this, slot](int client, const sockaddr* peer) { accept(client, peer, slot->index); });
  if (!slot->listener->ok()) {
    log::error("cannot listen", {{"worker", id_}, {"address", key}});
    into->erase(it);
    return false;
  }
  if (accept_paused_) {
    slot->listener->set_accepting(false);
  }
  return true;
}

void Worker::retire_due() {
  auto now = std::chrono::steady_clock::now();
  uint64_t below = 0;
  while (!retiring_.empty() && retiring_.front().second <= now) {
    below = retiring_.front().first;
    retiring_.pop_front();
  }
  if (below > 0) {
    std::vector<DownstreamConnection*> all;
    for (auto& c : conns_) {
      all.push_back(c.get());
    }
    size_t cut = 0;
    for (auto* c : all) {
      cut += c->retire_old_exchange(below) ? 1 : 0;
    }
    if (cut > 0) {
      log::warn("requests cut after a reload", {{"worker", id_}, {"connections", cut}});
    }
  }
  if (!retiring_.empty()) {
    auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(retiring_.front().second - now);
    retire_timer_.arm(std::max(wait, std::chrono::milliseconds(1)));
  }
}

void Worker::accept(int fd, const sockaddr* peer, size_t listener_index) {
  uint32_t limit = snapshot_->config().limits.max_connections;
  uint64_t before = stats_.connections.fetch_add(1, std::memory_order_relaxed);
  if (before >= limit) {
    // Other workers hold every slot; this one was accepted before we could know.
    stats_.connections.fetch_sub(1, std::memory_order_relaxed);
    Deferred d{fd, {}, listener_index};
    std::memcpy(&d.peer, peer,
                peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    deferred_.push_back(d);
    set_accepting(false);
    return;
  }
  if (before + 1 >= limit) {
    set_accepting(false);
  }
  const config::Listener& l = snapshot_->config().listeners[listener_index];
  int64_t hsts = std::chrono::duration_cast<std::chrono::seconds>(l.hsts).count();
  auto conn = std::make_unique<DownstreamConnection>(*this, snapshot_, listener_index,
                                                     ClientInfo{peer_ip(peer), l.tls, hsts});
  DownstreamConnection* raw = conn.get();
  conns_.push_front(std::move(conn));
  raw->self = conns_.begin();
  if (!raw->start(fd)) {
    log::warn("cannot set up client connection", {{"client", raw->client().ip}});
    raw->close("transport setup failed");
  }
}

void Worker::set_accepting(bool on) {
  if (on == !accept_paused_) {
    return;
  }
  accept_paused_ = !on;
  for (auto& [key, slot] : listeners_) {
    slot.listener->set_accepting(on);
  }
  if (on) {
    accept_poll_.cancel();
    log::info("accepting again: below max_connections");
  } else {
    accept_poll_.arm(ACCEPT_POLL_INTERVAL);
    log::warn("max_connections reached: accepting paused",
              {{"limit", snapshot_->config().limits.max_connections}});
  }
}

void Worker::resume_accepting_if_below_limit() {
  if (!accept_paused_ || draining_) {
    return;
  }
  uint32_t limit = snapshot_->config().limits.max_connections;
  while (!deferred_.empty() && stats_.connections.load(std::memory_order_relaxed) < limit) {
    Deferred d = deferred_.front();
    deferred_.pop_front();
    accept(d.fd, reinterpret_cast<const sockaddr*>(&d.peer), d.listener_index);
  }
  if (deferred_.empty() && stats_.connections.load(std::memory_order_relaxed) < limit) {
    set_accepting(true);
  } else {
    accept_poll_.arm(ACCEPT_POLL_INTERVAL);
  }
}

void Worker::close_deferred() {
  for (const auto& d : deferred_) {
    ::close(d.fd);
  }
  deferred_.clear();
}

void Worker::remove(DownstreamConnection* conn) {
  std::unique_ptr<DownstreamConnection> owned = std::move(*conn->self);
  conns_.erase(conn->self);
  stats_.connections.fetch_sub(1, std::memory_order_relaxed);
  resume_accepting_if_below_limit();
  loop_.defer_delete(std::move(owned));
  maybe_exit();
}

RequestId Worker::next_request_id() {
  static constexpr char HEX[] = "0123456789abcdef";
  char buf[32];
  for (size_t half = 0; half < 2; ++half) {
    uint64_t r = rng_();
    for (size_t i = 0; i < 16; ++i) {
      buf[half * 16 + 15 - i] = HEX[r & 0xf];
      r >>= 4;
    }
  }
  RequestId id;
  id.assign(std::string_view(buf, sizeof buf));
  return id;
}

void Worker::drain() {
  draining_ = true;
  retire_timer_.cancel();
  accept_poll_.cancel();
  close_deferred();
  listeners_.clear();
  pool_.clear();
  std::vector<DownstreamConnection*> all;
  for (auto& c : conns_) {
    all.push_back(c.get());
  }
  for (auto* c : all) {
    c->drain();
  }
  maybe_exit();
}

void Worker::stop() {
  loop_.exit();
}

void Worker::maybe_exit() {
  if (draining_ && conns_.empty()) {
    loop_.exit();
  }
}

}  // namespace fd::proxy
