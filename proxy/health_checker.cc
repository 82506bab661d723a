#include "proxy/health_checker.h"

#include "common/log.h"
#include "proxy/http1_parser.h"
#include "proxy/transport.h"
#include "proxy/version.h"

namespace fd::proxy {
namespace {

constexpr uint32_t MAX_CHECK_HEAD = 64 * 1024;

}  // namespace

// One check: connect, send the GET, read the status line, report once. An empty path checks
// the TCP connect only (quick mode). Dies through defer_delete.
class HealthChecker::Probe : public Deferrable,
                             private Transport::Handler,
                             private Http1Parser::Handler {
 public:
  using Done = std::function<void(bool pass, const std::string& detail)>;

  Probe(EventLoop& loop, const UpstreamServer& server, const config::HealthCheck& check, Done done)
      : loop_(loop),
        server_(server),
        check_(check),
        done_(std::move(done)),
        parser_(Http1Parser::Kind::response, this, MAX_CHECK_HEAD),
        timeout_(loop, [this] { finish(false, "timeout"); }) {}

  void start() {
    timeout_.arm(check_.timeout);
    auto t = Transport::connect_tcp(loop_, reinterpret_cast<const sockaddr*>(&server_.addr),
                                    server_.addr_len, this);
    if (!t) {
      finish(false, t.error().message);
      return;
    }
    transport_ = std::move(*t);
  }

  // Stops the probe without reporting: its session is going away.
  void cancel() {
    finished_ = true;
    timeout_.cancel();
    if (transport_) {
      transport_->close();
    }
  }

 private:
  void on_connected() override {
    if (check_.path.empty()) {
      finish(true, "connected");
      return;
    }
    std::string req = "GET " + check_.path + " HTTP/1.1\r\nHost: " + server_.name +
                      "\r\nUser-Agent: frontdoor/" + VERSION +
                      "\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    evbuffer_add(transport_->output(), req.data(), req.size());
  }

  void on_readable() override {
    evbuffer* in = transport_->input();
    while (!finished_ && evbuffer_get_length(in) > 0) {
      evbuffer_iovec seg;
      evbuffer_peek(in, -1, nullptr, &seg, 1);
      auto out = parser_.execute(static_cast<const char*>(seg.iov_base), seg.iov_len);
      evbuffer_drain(in, out.consumed);
      if (out.status == Http1Parser::Status::error) {
        finish(false, "invalid response: " + out.reason);
      } else if (out.status == Http1Parser::Status::message_done) {
        parser_.next_message();
      }
    }
  }

  bool on_head() override {
    int status = parser_.response().status;
    if (status >= 200) {
      bool pass = status < 400;
      finish(pass, pass ? "pass" : "status " + std::to_string(status));
    }
    return true;
  }
  void on_body(const char*, size_t) override {}
  void on_message_complete() override {}
  void on_drained() override {}
  void on_closed(bool, bool timeout, const std::string& reason) override {
    finish(false, timeout ? "timeout" : reason);
  }

  void finish(bool pass, const std::string& detail) {
    if (finished_) {
      return;
    }
    finished_ = true;
    timeout_.cancel();
    if (transport_) {
      transport_->close();
    }
    done_(pass, detail);
  }

  EventLoop& loop_;
  const UpstreamServer& server_;
  const config::HealthCheck check_;  // a copy: a reload may free the configuration first
  Done done_;
  std::unique_ptr<Transport> transport_;
  Http1Parser parser_;
  bool finished_ = false;
  Timer timeout_;
};

// The checks of one server: a timer between probes and the probe in flight.
class HealthChecker::Session {
 public:
  Session(EventLoop& loop, std::shared_ptr<UpstreamServer> server, const config::Upstream& settings,
          std::chrono::milliseconds first_delay)
      : loop_(loop),
        server_(std::move(server)),
        settings_(settings),
        next_(loop, [this] { probe(); }) {
    next_.arm(first_delay);
  }

  ~Session() {
    if (probe_) {
      probe_->cancel();
      loop_.defer_delete(std::move(probe_));
    }
  }

 private:
  void probe() {
    const config::HealthCheck& check = settings_.health_check;
    probe_ = std::make_unique<Probe>(
        loop_, *server_, check,
        [this](bool pass, const std::string& detail) { record(pass, detail); });
    probe_->start();
  }

  void record(bool pass, const std::string& detail) {
    loop_.defer_delete(std::move(probe_));
    UpstreamServer& s = *server_;
    Health before = s.record_check(pass, detail, settings_.health_check, log::timestamp_now());
    Health after = s.health.load(std::memory_order_relaxed);
    if (after != before) {
      auto fields = nlohmann::json{{"upstream", settings_.name},
                                   {"server", s.address},
                                   {"health", to_string(after)},
                                   {"check", s.last_check_result}};
      if (after == Health::down) {
        log::warn("upstream server down", std::move(fields));
      } else {
        log::info("upstream server up", std::move(fields));
      }
    }
    next_.arm(settings_.health_check.interval);
  }

  EventLoop& loop_;
  std::shared_ptr<UpstreamServer> server_;
  const config::Upstream settings_;  // a copy: a reload may free the configuration first
  std::unique_ptr<Probe> probe_;
  Timer next_;
};

HealthChecker::HealthChecker(EventLoop& loop) : loop_(loop), rng_(std::random_device{}()) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::clear() {
  sessions_.clear();
}

void HealthChecker::sync(size_t group, const config::Upstream& settings,
                         const ServerList& servers) {
  if (!settings.health_check_enabled) {
    return;
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    bool keep = it->first.first != group;
    for (const auto& s : servers) {
      keep = keep || it->first.second == s.get();
    }
    it = keep ? std::next(it) : sessions_.erase(it);
  }
  for (const auto& s : servers) {
    auto key = std::make_pair(group, s.get());
    if (sessions_.count(key) != 0) {
      continue;
    }
    // A server nobody has checked yet is probed at once; one that comes back with results
    // (it vanished from DNS and returned) starts after a jittered interval.
    std::chrono::milliseconds delay{0};
    if (s->health.load(std::memory_order_relaxed) != Health::unknown) {
      std::uniform_int_distribution<int64_t> jitter(0, settings.health_check.interval.count());
      delay = std::chrono::milliseconds(jitter(rng_));
    }
    sessions_.emplace(key, std::make_unique<Session>(loop_, s, settings, delay));
  }
}

}  // namespace fd::proxy
