#include "acme/manager.h"

#include "acme/client.h"
#include "acme/http_client.h"
#include "acme/storage.h"
#include "common/log.h"
#include "common/time_format.h"

namespace fd::acme {
namespace {

constexpr std::chrono::seconds HTTP_TIMEOUT{30};  // per request; shutdown aborts sooner
// Even with nothing due, look again this often (storage written by another replica, clock).
constexpr std::chrono::hours MAX_SLEEP{1};

}  // namespace

// The ACME thread's connection to the CA, made on first use.
struct Manager::Session {
  Storage storage;
  std::unique_ptr<HttpClient> http;
  std::optional<EcKey> account;
  std::unique_ptr<Client> client;
  bool registered = false;
};

Manager::Manager(const config::Acme& config, CertStore& store, ChallengeStore& challenges)
    : config_(config), store_(store), challenges_(challenges), rng_(std::random_device{}()) {
  for (const auto& name : config_.domains) {
    names_[name] = NameState{};
  }
}

Manager::~Manager() {
  stop();
}

void Manager::start() {
  session_ = std::make_unique<Session>(
      Session{Storage(config_.storage, config_.directory), nullptr, std::nullopt, nullptr, false});
  if (auto rc = session_->storage.prepare(); !rc) {
    log::error("acme storage unusable",
               {{"storage", config_.storage}, {"reason", rc.error().message}});
  }
  for (const auto& name : config_.domains) {
    load_stored(name);
  }
  thread_ = std::thread([this] { run(); });
}

void Manager::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool Manager::stopping() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stop_;
}

std::vector<NameStatus> Manager::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<NameStatus> out;
  for (const auto& [name, st] : names_) {
    NameStatus s;
    s.name = name;
    s.has_certificate = st.current != nullptr;
    if (st.current) {
      s.issuer = st.current->info.issuer;
      s.serial_hex = st.current->info.serial_hex;
      s.not_after = st.current->info.not_after;
    }
    s.next_renewal = Clock::to_time_t(st.next_attempt);
    s.last_error = st.last_error;
    s.failures = st.failures;
    out.push_back(std::move(s));
  }
  return out;
}

void Manager::run() {
  while (!stopping()) {
    Clock::time_point next = Clock::now() + MAX_SLEEP;
    for (const auto& name : config_.domains) {
      if (stopping()) {
        return;
      }
      next = std::min(next, process(name));
    }
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_until(lock, next, [this] { return stop_; });
  }
}

bool Manager::load_stored(const std::string& name) {
  auto chain = session_->storage.read_chain(name);
  auto key = session_->storage.read_key(name);
  if (!chain || !key) {
    return false;
  }
  auto info = inspect_chain(*chain, *key, std::time(nullptr));
  if (!info) {
    log::warn("stored certificate unusable", {{"name", name}, {"reason", info.error().message}});
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto& current = names_[name].current;
    if (current && current->info.serial_hex == info->serial_hex) {
      return false;
    }
  }
  auto cert = std::make_shared<ManagedCertificate>(ManagedCertificate{name, *chain, *key, *info});
  log::info("acme certificate loaded from storage",
            {{"name", name},
             {"serial", info->serial_hex},
             {"not_after", format_rfc3339(info->not_after)}});
  publish(name, std::move(cert));
  return true;
}

void Manager::publish(const std::string& name, std::shared_ptr<const ManagedCertificate> cert) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    names_[name].current = cert;
  }
  store_.publish(std::move(cert));
}

Clock::time_point Manager::process(const std::string& name) {
  Clock::time_point now = Clock::now();
  NameState st;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    st = names_[name];
  }
  if (st.next_attempt > now) {
    return st.next_attempt;
  }
  // A replica sharing the storage may have renewed already: serve what it stored.
  if (st.current && load_stored(name)) {
    std::lock_guard<std::mutex> lock(mutex_);
    st = names_[name];
  }
  if (st.current) {
    Clock::time_point due = renewal_due(*st.current);
    if (due > now) {
      std::lock_guard<std::mutex> lock(mutex_);
      names_[name].next_attempt = due;
      return due;
    }
  }
  auto lock = session_->storage.lock(name, [this] { return stopping(); });
  if (!lock) {
    if (stopping()) {
      return now;
    }
    std::lock_guard<std::mutex> guard(mutex_);
    NameState& state = names_[name];
    ++state.consecutive_failures;
    ++state.failures;
    state.last_error = "cannot take the storage lock: " + lock.error().message;
    state.next_attempt = now + backoff(state.consecutive_failures, &rng_);
    log::warn("acme order postponed", {{"name", name}, {"reason", state.last_error}});
    return state.next_attempt;
  }
  if (stopping()) {
    return now;
  }
  // Another replica sharing the storage may have renewed while we waited for the lock.
  if (load_stored(name)) {
    std::lock_guard<std::mutex> guard(mutex_);
    names_[name].next_attempt = Clock::time_point{};
    return now;
  }
  log::info("acme order", {{"name", name}, {"renewal", st.current != nullptr}});
  auto cert = order(name);
  if (!cert && stopping()) {
    return now;  // abandoned for shutdown: not a failure of the CA, nothing to record
  }
  Clock::time_point next = now;
  std::string error;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    NameState& state = names_[name];
    if (cert) {
      state.consecutive_failures = 0;
      state.last_error.clear();
      state.next_attempt = Clock::time_point{};
    } else {
      ++state.consecutive_failures;
      ++state.failures;
      state.last_error = cert.error().message;
      state.next_attempt = now + backoff(state.consecutive_failures, &rng_);
      next = state.next_attempt;
      error = state.last_error;
      log::warn("acme order failed; the current certificate stays in service",
                {{"name", name},
                 {"reason", error},
                 {"attempt", state.consecutive_failures},
                 {"retry_at", format_rfc3339(Clock::to_time_t(next))}});
    }
  }
  nlohmann::json state = {{"last_error", error},
                          {"next_attempt", cert ? "" : format_rfc3339(Clock::to_time_t(next))},
                          {"updated", format_rfc3339(std::time(nullptr))}};
  if (auto rc = session_->storage.write_state(name, state.dump() + "\n"); !rc) {
    log::warn("cannot store the acme state", {{"name", name}, {"reason", rc.error().message}});
  }
  return next;
}

Result<std::shared_ptr<const ManagedCertificate>> Manager::order(const std::string& name) {
  Session& s = *session_;
  if (!s.client) {
    s.http = make_curl_http_client(config_.ca_bundle, HTTP_TIMEOUT, [this] { return stopping(); });
    auto stored = s.storage.read_account_key();
    auto key = stored ? EcKey::from_pem(*stored) : EcKey::generate();
    if (!key) {
      return key.error();
    }
    if (!stored) {
      if (auto rc = s.storage.write_account_key(key->to_pem()); !rc) {
        return rc.error();
      }
    }
    s.account.emplace(std::move(*key));
    ClientOptions options;
    options.directory_url = config_.directory;
    options.email = config_.email;
    options.eab_kid = config_.eab_kid;
    options.eab_hmac_key = config_.eab_hmac_key;
    // Polls wait on the stop signal, so shutdown does not sit out an order in progress.
    options.sleep = [this](std::chrono::milliseconds delay) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, delay, [this] { return stop_; });
    };
    options.cancelled = [this] { return stopping(); };
    s.client = std::make_unique<Client>(*s.http, *s.account, options);
  }
  if (!s.registered) {
    if (auto rc = s.client->ensure_account(); !rc) {
      return rc.error();
    }
    s.registered = true;
    if (auto rc = s.storage.write_account_url(s.client->account_url()); !rc) {
      log::warn("cannot store the acme account url", {{"reason", rc.error().message}});
    }
  }
  std::string replaces;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto& current = names_[name].current;
    if (current && s.client->has_renewal_info()) {
      auto id = Client::renewal_id(current->chain_pem);
      replaces = id ? *id : std::string();
    }
  }
  auto cert_key = EcKey::generate();
  if (!cert_key) {
    return cert_key.error();
  }
  ChallengeType type =
      config_.challenge == "tls-alpn-01" ? ChallengeType::tls_alpn01 : ChallengeType::http01;
  auto chain = s.client->order_certificate({name}, type, *cert_key, challenges_, replaces);
  if (!chain) {
    return chain.error();
  }
  std::string key_pem = cert_key->to_pem();
  auto info = inspect_chain(*chain, key_pem, std::time(nullptr));
  if (!info) {
    return make_error(Errc::protocol,
                      "the CA's certificate does not check out: " + info.error().message);
  }
  if (auto rc = s.storage.write_certificate(name, *chain, key_pem); !rc) {
    return rc.error();
  }
  auto cert =
      std::make_shared<ManagedCertificate>(ManagedCertificate{name, *chain, key_pem, *info});
  log::info("acme certificate issued", {{"name", name},
                                        {"serial", info->serial_hex},
                                        {"issuer", info->issuer},
                                        {"not_after", format_rfc3339(info->not_after)}});
  publish(name, cert);
  return std::shared_ptr<const ManagedCertificate>(cert);
}

Clock::time_point Manager::renewal_due(const ManagedCertificate& cert) {
  Clock::time_point not_before = to_system_time(cert.info.not_before);
  Clock::time_point not_after = to_system_time(cert.info.not_after);
  if (!config_.renew_auto) {
    return renewal_time(not_before, not_after,
                        std::chrono::duration_cast<std::chrono::seconds>(config_.renew_before));
  }
  Session& s = *session_;
  if (s.client && s.registered && s.client->has_renewal_info()) {
    auto id = Client::renewal_id(cert.chain_pem);
    auto window = id ? s.client->renewal_info(*id) : Result<RenewalInfo>(id.error());
    if (window) {
      AriPick& cached = ari_picks_[cert.name];
      if (cached.start != window->start || cached.end != window->end) {
        cached =
            AriPick{window->start, window->end, pick_in_window(window->start, window->end, &rng_)};
      }
      return std::min(cached.pick, Clock::now() + window->retry_after);
    }
    log::warn("acme renewalInfo unavailable; using the lifetime rule",
              {{"name", cert.name}, {"reason", window.error().message}});
  }
  return renewal_time(not_before, not_after, std::nullopt);
}

}  // namespace fd::acme
