#include "proxy/server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>

#include "common/log.h"
#include "common/time_format.h"
#include "config/diff.h"
#include "config/load.h"
#include "proxy/privileges.h"
#include "proxy/service_notify.h"
#include "proxy/version.h"

namespace fd::proxy {
namespace {

constexpr std::chrono::milliseconds POLL_INTERVAL{50};
constexpr std::chrono::hours TICKET_KEY_ROTATION{1};

// Adds the ACME side's view to the certificate list: renewal time and last error for the
// managed names, and the names still waiting for their first certificate.
void merge_acme_status(const std::vector<acme::NameStatus>& names,
                       std::vector<CertificateView>* certificates) {
  for (const auto& n : names) {
    CertificateView* view = nullptr;
    for (auto& c : *certificates) {
      bool match =
          c.source == "acme" && std::find(c.names.begin(), c.names.end(), n.name) != c.names.end();
      view = match ? &c : view;
    }
    if (view == nullptr) {
      certificates->push_back(CertificateView{{n.name}, "", "", "acme", "", "", 0, 0});
      view = &certificates->back();
    }
    if (n.next_renewal > 0) {
      view->next_renewal = format_rfc3339(n.next_renewal);
    }
    view->last_error = n.last_error;
    view->acme_failures = n.failures;
  }
}

}  // namespace

Server::Server(std::shared_ptr<const config::Config> config)
    : config_(std::move(config)),
      started_at_(log::timestamp_now()),
      checker_(loop_),
      registry_(loop_, [this](size_t group,
                              const ServerListPtr& servers) { publish_servers(group, servers); }),
      admin_(loop_, [this] { return admin_view(); }),
      poll_timer_(loop_, [this] { check_workers(); }),
      delay_timer_(loop_, [this] { start_drain(); }),
      deadline_timer_(loop_, [this] {
        forced_ = true;
        log::warn("shutdown timeout reached: closing remaining connections");
        for (auto& w : workers_) {
          w->request_stop();
        }
      }),
      ticket_timer_(loop_, [this] {
        tickets_.rotate();
        ticket_timer_.arm(TICKET_KEY_ROTATION);
      }) {
  reloads_.source = config_->source;
  reloads_.loaded_at = started_at_;
}

Server::~Server() {
  for (auto* ev : signal_events_) {
    event_free(ev);
  }
}

Result<void> Server::open_sockets(const config::Config& config,
                                  const std::vector<std::string>& keep,
                                  std::vector<std::vector<int>>* out) const {
  out->assign(worker_count_, std::vector<int>(config.listeners.size(), -1));
  for (size_t li = 0; li < config.listeners.size(); ++li) {
    const config::Listener& l = config.listeners[li];
    if (std::find(keep.begin(), keep.end(), listen_key(l.endpoint)) != keep.end()) {
      continue;
    }
    for (unsigned w = 0; w < worker_count_; ++w) {
      auto fd = open_listen_socket(l.endpoint, l.address, true);
      if (!fd) {
        for (auto& list : *out) {
          for (int s : list) {
            if (s >= 0) {
              ::close(s);
            }
          }
        }
        // Points at the listener in the file, like the other configuration errors.
        return make_error(fd.error().code,
                          config::to_string(config::Diagnostic{config.source, l.mark.line,
                                                               l.mark.col, fd.error().message}));
      }
      (*out)[w][li] = *fd;
    }
  }
  return {};
}

int Server::run() {
  // Handlers first: the listeners accept before the workers start, and a SIGHUP or SIGTERM
  // sent as soon as a port answers must not meet the default action (exit). Signals that
  // arrive before the loop runs wait for it.
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    event* ev = evsignal_new(loop_.base(), sig, &Server::on_signal, this);
    evsignal_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  ticket_timer_.arm(TICKET_KEY_ROTATION);
  auto snapshot = RuntimeSnapshot::build(config_, nullptr, 1);
  if (!snapshot) {
    log::error("startup failed", {{"reason", snapshot.error().message}});
    return 2;
  }
  snapshot_ = *snapshot;
  worker_count_ = config_->workers;
  if (worker_count_ == 0) {
    worker_count_ = std::max(1u, std::thread::hardware_concurrency());
  }
  std::vector<std::vector<int>> sockets;
  if (auto opened = open_sockets(*config_, {}, &sockets); !opened) {
    log::error("startup failed", {{"reason", opened.error().message}});
    return 2;
  }
  for (const auto& l : config_->listeners) {
    listen_keys_.push_back(listen_key(l.endpoint));
  }
  if (config_->admin.enabled) {
    auto rc = admin_.listen(config_->admin);
    if (!rc) {
      log::error("startup failed", {{"reason", rc.error().message}});
      return 2;
    }
  }
  // Every socket the config names is open: the rest, certificate keys included, is done as
  // the configured user.
  if (!config_->user.empty()) {
    std::string state_dir = config_->tls.acme_enabled ? config_->tls.acme.storage : "";
    if (auto rc = become_user(config_->user, state_dir); !rc) {
      log::error("startup failed", {{"reason", rc.error().message}});
      return 2;
    }
    log::info("running as", {{"user", config_->user}, {"uid", getuid()}});
  }
  cert_store_.set_listener([this] { loop_.post([this] { install_managed_certificates(); }); });
  configure_acme(*config_);
  auto tls = build_tls(*config_);
  if (!tls) {
    log::error("startup failed", {{"reason", tls.error().message}});
    return 2;
  }
  tls_ = *tls;
  // Resolves every upstream once before the workers start, so they begin with real lists.
  registry_.start(*config_);
  std::vector<ServerListPtr> initial;
  for (size_t g = 0; g < registry_.group_count(); ++g) {
    initial.push_back(registry_.servers(g));
  }

  // Workers inherit a mask without the signals we handle, so they all reach the main loop.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    sigaddset(&handled, sig);
  }
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &handled, &previous);
  for (unsigned w = 0; w < worker_count_; ++w) {
    workers_.push_back(std::make_unique<Worker>(
        w, WorkerConfig{snapshot_, tls_, initial, std::move(sockets[w])}, challenges_, stats_));
    workers_.back()->start();
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);

  for (const auto& l : config_->listeners) {
    log::info("listening",
              {{"address", l.address}, {"tls", l.tls}, {"redirect_https", l.redirect_https}});
  }
  log::info("ready", {{"workers", worker_count_}, {"config", config_->source}});
  notify_ready("serving, configuration generation 1");
  loop_.run();

  size_t cut = 0;
  for (auto& w : workers_) {
    w->join();
    cut += w->cut_connections();
  }
  if (acme_) {
    acme_->stop();
  }
  log::info("stopped", {{"forced", forced_}, {"connections_cut", cut}});
  return 0;
}

Result<std::shared_ptr<const TlsContextSet>> Server::build_tls(const config::Config& config) {
  bool any_tls = false;
  for (const auto& l : config.listeners) {
    any_tls = any_tls || l.tls;
  }
  if (!any_tls) {
    return std::shared_ptr<const TlsContextSet>();
  }
  auto managed = cert_store_.snapshot();
  return TlsContextSet::build(config.tls, managed.get(), &challenges_, &tickets_);
}

void Server::configure_acme(const config::Config& config) {
  if (acme_) {
    // Stops renewing names the file no longer lists; a new Manager takes the current list.
    acme_->stop();
    acme_.reset();
  }
  if (!config.tls.acme_enabled) {
    return;
  }
  // Stored certificates are published before the first handshake; orders run on its thread.
  challenges_.share_through(config.tls.acme.storage, config.tls.acme.directory);
  acme_ = std::make_unique<acme::Manager>(config.tls.acme, cert_store_, challenges_);
  acme_->start();
}

void Server::install_managed_certificates() {
  auto tls = build_tls(*config_);
  if (!tls) {
    log::error("cannot install certificates; the previous ones stay in service",
               {{"reason", tls.error().message}});
    return;
  }
  tls_ = *tls;
  for (auto& w : workers_) {
    w->request_tls(tls_);
  }
  log::info("certificates installed", {{"managed", cert_store_.version()}});
}

void Server::reload() {
  if (shutting_down_) {
    log::warn("SIGHUP ignored: shutting down");
    return;
  }
  if (config_->source == "<quick>") {
    log::warn("SIGHUP ignored: quick mode has no configuration file to reload");
    return;
  }
  notify_reloading();
  std::vector<std::string> errors;
  auto changes = switch_config(&errors);
  std::string now = log::timestamp_now();
  if (changes) {
    ++reloads_.generation;
    ++reloads_.reloads_success;
    reloads_.last_reload_success = now;
    reloads_.loaded_at = now;
    log::info("configuration reloaded", {{"result", "success"},
                                         {"generation", reloads_.generation},
                                         {"changes", std::move(*changes)}});
  } else {
    ++reloads_.reloads_failure;
    reloads_.last_reload_failure = now;
    reloads_.last_reload_error = errors.empty() ? std::string("unknown error") : errors.front();
    log::error("configuration reload failed",
               {{"result", "failure"}, {"generation", reloads_.generation}, {"errors", errors}});
  }
  notify_ready("serving, configuration generation " + std::to_string(reloads_.generation));
}

std::optional<nlohmann::json> Server::switch_config(std::vector<std::string>* errors) {
  auto loaded = config::load_file(config_->source, config::process_environment());
  for (const auto& d : loaded.errors) {
    errors->push_back(config::to_string(d));
  }
  if (!loaded.errors.empty()) {
    return std::nullopt;
  }
  auto next = std::make_shared<const config::Config>(std::move(*loaded.config));
  auto snapshot = RuntimeSnapshot::build(next, snapshot_.get(), reloads_.generation + 1);
  if (!snapshot) {
    errors->push_back(snapshot.error().message);
    return std::nullopt;
  }
  config::ConfigDiff diff = config::diff(*config_, *next);
  auto tls = build_tls(*next);
  if (!tls) {
    errors->push_back(tls.error().message);
    return std::nullopt;
  }
  std::vector<std::vector<int>> sockets;
  if (auto opened = open_sockets(*next, listen_keys_, &sockets); !opened) {
    errors->push_back(opened.error().message);
    return std::nullopt;
  }
  bool admin_moved = next->admin.enabled &&
                     (!config_->admin.enabled ||
                      listen_key(next->admin.endpoint) != listen_key(config_->admin.endpoint));
  if (admin_moved) {
    if (auto rc = admin_.listen(next->admin); !rc) {
      errors->push_back(config::to_string(config::Diagnostic{
          next->source, next->admin.mark.line, next->admin.mark.col, rc.error().message}));
      for (auto& list : sockets) {
        for (int fd : list) {
          if (fd >= 0) {
            ::close(fd);
          }
        }
      }
      return std::nullopt;
    }
  } else if (!next->admin.enabled) {
    admin_.close();
  }

  // Nothing below fails: the new configuration takes over.
  registry_.reconfigure(*next);
  checker_.clear();
  std::vector<ServerListPtr> lists;
  for (size_t g = 0; g < registry_.group_count(); ++g) {
    lists.push_back(registry_.servers(g));
    checker_.sync(g, next->upstreams[g], *lists.back());
  }
  auto applied = after_all_workers();
  for (size_t w = 0; w < workers_.size(); ++w) {
    workers_[w]->request_reload(WorkerConfig{*snapshot, *tls, lists, std::move(sockets[w])},
                                applied);
  }
  log::Level level;
  if (log::parse_level(next->log.level, &level)) {
    log::set_level(level);
  }
  for (const auto& setting : diff.restart_needed) {
    log::warn("setting changed; it takes effect at the next start", {{"setting", setting}});
  }
  listen_keys_.clear();
  for (const auto& l : next->listeners) {
    listen_keys_.push_back(listen_key(l.endpoint));
  }
  config_ = std::move(next);
  snapshot_ = *snapshot;
  tls_ = *tls;
  if (diff.acme_changed) {
    // Stored certificates of added names arrive through the store's listener, which rebuilds
    // the TLS set from config_.
    configure_acme(*config_);
  }
  return nlohmann::json{
      {"listeners_added", diff.listeners_added},
      {"listeners_removed", diff.listeners_removed},
      {"listeners_changed", diff.listeners_changed},
      {"upstreams_added", diff.upstreams_added},
      {"upstreams_removed", diff.upstreams_removed},
      {"upstreams_changed", diff.upstreams_changed},
      {"routes_changed", diff.routes_changed},
      {"certificates", config_->tls.certificates.size()},
      {"certificate_files_changed", diff.tls_changed},
      {"acme_changed", diff.acme_changed},
      {"acme_domains_added", diff.acme_domains_added},
      {"acme_domains_removed", diff.acme_domains_removed},
      {"restart_needed", diff.restart_needed},
  };
}

std::function<void()> Server::after_all_workers() {
  struct Countdown {
    std::atomic<size_t> left;
    std::vector<std::shared_ptr<UpstreamServer>> retired;
  };
  auto state = std::make_shared<Countdown>();
  state->left = workers_.size();
  state->retired = registry_.take_retired();
  return [state] {
    if (state->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      for (const auto& s : state->retired) {
        s->removed.store(true, std::memory_order_relaxed);
      }
    }
  };
}

void Server::publish_servers(size_t group, const ServerListPtr& servers) {
  auto applied = after_all_workers();
  for (auto& w : workers_) {
    w->request_servers(group, servers, applied);
  }
  checker_.sync(group, config_->upstreams[group], *servers);
}

AdminView Server::admin_view() const {
  AdminView v;
  v.version = VERSION;
  v.started_at = started_at_;
  v.draining = shutting_down_;
  v.config = reloads_;
  v.connections_active = stats_.connections.load(std::memory_order_relaxed);
  int64_t now = steady_now_ms();
  for (size_t g = 0; g < registry_.group_count(); ++g) {
    const UpstreamGroup& group = snapshot_->group(g);
    const config::Upstream& settings = *group.settings;
    v.upstreams.push_back(UpstreamView{settings.name, settings.balance,
                                       group.counters->retries.load(std::memory_order_relaxed),
                                       group.counters->unserved.snapshot()});
    for (const auto& s : *registry_.servers(g)) {
      ServerView sv;
      sv.upstream = settings.name;
      sv.address = s->address;
      sv.name = s->name;
      sv.up = s->available(now);
      sv.health = to_string(s->health.load(std::memory_order_relaxed));
      sv.passive_down = s->passive_down(now);
      sv.checked = !s->last_check_time.empty();
      sv.last_check_time = s->last_check_time;
      sv.last_check_result = s->last_check_result;
      sv.consecutive_passes = s->consecutive_passes;
      sv.consecutive_failures = s->consecutive_failures;
      sv.active = s->active.load(std::memory_order_relaxed);
      sv.requests = s->requests.load(std::memory_order_relaxed);
      sv.failures = s->failures.load(std::memory_order_relaxed);
      sv.responses_by_code = s->responses.snapshot();
      v.servers.push_back(std::move(sv));
    }
  }
  v.unrouted_by_code = stats_.unrouted.snapshot();
  v.request_duration = stats_.request_duration.view();
  if (tls_) {
    v.certificates = tls_->describe();
  }
  if (acme_) {
    merge_acme_status(acme_->status(), &v.certificates);
  }
  return v;
}

void Server::on_signal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  switch (sig) {
    case SIGTERM:
      self->begin_shutdown("SIGTERM");
      return;
    case SIGINT:
      self->begin_shutdown("SIGINT");
      return;
    case SIGHUP:
      self->reload();
      return;
    default:
      return;
  }
}

void Server::begin_shutdown(const char* signal_name) {
  if (shutting_down_) {
    if (!drain_started_) {
      log::info("second signal: draining now", {{"signal", signal_name}});
      delay_timer_.cancel();
      start_drain();
    }
    return;
  }
  shutting_down_ = true;
  notify_stopping();
  log::info("shutting down", {{"signal", signal_name},
                              {"delay_ms", config_->shutdown_delay.count()},
                              {"timeout_ms", config_->shutdown_timeout.count()}});
  if (config_->shutdown_delay.count() > 0) {
    delay_timer_.arm(config_->shutdown_delay);
  } else {
    start_drain();
  }
}

void Server::start_drain() {
  drain_started_ = true;
  for (auto& w : workers_) {
    w->request_drain();
  }
  deadline_timer_.arm(config_->shutdown_timeout);
  poll_timer_.arm(POLL_INTERVAL);
}

void Server::check_workers() {
  for (const auto& w : workers_) {
    if (!w->finished()) {
      poll_timer_.arm(POLL_INTERVAL);
      return;
    }
  }
  loop_.exit();
}

}  // namespace fd::proxy
