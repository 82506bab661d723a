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
#include "proxy/version.h"

namespace fd::proxy {
namespace {

constexpr std::chrono::milliseconds POLL_INTERVAL{50};

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
      registry_(
          loop_, *config_,
          [this](size_t group, const ServerListPtr& servers) { publish_servers(group, servers); }),
      admin_(loop_, [this] { return admin_view(); }),
      poll_timer_(loop_, [this] { check_workers(); }),
      deadline_timer_(loop_, [this] {
        forced_ = true;
        log::warn("shutdown timeout reached: closing remaining connections");
        for (auto& w : workers_) {
          w->request_stop();
        }
      }) {}

Server::~Server() {
  for (auto* ev : signal_events_) {
    event_free(ev);
  }
}

bool Server::open_sockets(unsigned workers, std::vector<std::vector<ListenSocket>>* out) {
  out->assign(workers, {});
  for (size_t li = 0; li < config_->listeners.size(); ++li) {
    for (unsigned w = 0; w < workers; ++w) {
      const config::Listener& l = config_->listeners[li];
      auto fd = open_listen_socket(l.endpoint, l.address, true);
      if (!fd) {
        log::error("startup failed", {{"reason", fd.error().message}});
        for (auto& list : *out) {
          for (auto& s : list) {
            ::close(s.fd);
          }
        }
        return false;
      }
      (*out)[w].push_back(ListenSocket{*fd, li});
    }
  }
  return true;
}

int Server::run() {
  auto snapshot = RuntimeSnapshot::build(config_);
  if (!snapshot) {
    log::error("startup failed", {{"reason", snapshot.error().message}});
    return 2;
  }
  snapshot_ = *snapshot;
  unsigned workers = config_->workers;
  if (workers == 0) {
    workers = std::max(1u, std::thread::hardware_concurrency());
  }
  std::vector<std::vector<ListenSocket>> sockets;
  if (!open_sockets(workers, &sockets)) {
    return 2;
  }
  if (config_->admin.enabled) {
    auto rc = admin_.listen(config_->admin);
    if (!rc) {
      log::error("startup failed", {{"reason", rc.error().message}});
      return 2;
    }
  }
  if (config_->tls.acme_enabled) {
    // Stored certificates are published before the first handshake; orders run on its thread.
    challenges_.share_through(config_->tls.acme.storage, config_->tls.acme.directory);
    acme_ = std::make_unique<acme::Manager>(config_->tls.acme, cert_store_, challenges_);
    cert_store_.set_listener([this] { loop_.post([this] { install_managed_certificates(); }); });
    acme_->start();
  }
  auto tls = build_tls();
  if (!tls) {
    log::error("startup failed", {{"reason", tls.error().message}});
    return 2;
  }
  tls_ = *tls;
  // Resolves every upstream once before the workers start, so they begin with real lists.
  registry_.start();
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
  for (unsigned w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<Worker>(w, snapshot_, std::move(sockets[w]), initial, tls_,
                                                config_->tls.acme_enabled ? &challenges_ : nullptr,
                                                stats_));
    workers_.back()->start();
  }
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    event* ev = evsignal_new(loop_.base(), sig, &Server::on_signal, this);
    evsignal_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);

  for (const auto& l : config_->listeners) {
    log::info("listening",
              {{"address", l.address}, {"tls", l.tls}, {"redirect_https", l.redirect_https}});
  }
  log::info("ready", {{"workers", workers}, {"config", config_->source}});
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

Result<std::shared_ptr<const TlsContextSet>> Server::build_tls() {
  bool any_tls = false;
  for (const auto& l : config_->listeners) {
    any_tls = any_tls || l.tls;
  }
  if (!any_tls) {
    return std::shared_ptr<const TlsContextSet>();
  }
  auto managed = cert_store_.snapshot();
  return TlsContextSet::build(config_->tls, managed.get(), &challenges_);
}

void Server::install_managed_certificates() {
  auto tls = build_tls();
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

void Server::publish_servers(size_t group, const ServerListPtr& servers) {
  for (auto& w : workers_) {
    w->request_servers(group, servers);
  }
  checker_.sync(group, config_->upstreams[group], *servers);
}

AdminView Server::admin_view() const {
  AdminView v;
  v.version = VERSION;
  v.started_at = started_at_;
  v.draining = shutting_down_;
  v.connections_active = stats_.connections.load(std::memory_order_relaxed);
  int64_t now = steady_now_ms();
  for (size_t g = 0; g < registry_.group_count(); ++g) {
    const UpstreamGroup& group = snapshot_->group(g);
    const config::Upstream& settings = *group.settings;
    v.upstreams.push_back(UpstreamView{settings.name, settings.balance,
                                       group.retries.load(std::memory_order_relaxed),
                                       group.unserved.snapshot()});
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
      log::warn(
          "SIGHUP received: configuration reload is not implemented yet; "
          "the running configuration stays in place");
      return;
    default:
      return;
  }
}

void Server::begin_shutdown(const char* signal_name) {
  if (shutting_down_) {
    return;
  }
  shutting_down_ = true;
  log::info("shutting down",
            {{"signal", signal_name}, {"timeout_ms", config_->shutdown_timeout.count()}});
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
