#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "acme/cert_store.h"
#include "acme/challenge_store.h"
#include "acme/renewal.h"
#include "config/config.h"

namespace fd::acme {

// What /status shows for one managed name.
struct NameStatus {
  std::string name;
  bool has_certificate = false;
  std::string issuer;
  std::string serial_hex;
  std::time_t not_after = 0;
  std::time_t next_renewal = 0;  // next attempt, renewal or retry
  std::string last_error;
  uint64_t failures = 0;  // failed attempts since start
};

// Owns the ACME thread: keeps a valid certificate for every configured name, obtaining,
// storing and renewing them, and publishes each through the CertStore. A failure keeps the
// current certificate in service and retries with backoff. Several replicas may share the
// storage: an order is placed under a lock file, and a certificate another replica stored is
// picked up instead of ordering again.
class Manager {
 public:
  Manager(const config::Acme& config, CertStore& store, ChallengeStore& challenges);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Publishes the valid certificates already in storage (so a restart serves them at once and
  // orders nothing), then starts the thread. Main thread.
  void start();
  // Stops the thread; an order in progress is abandoned at its next step. Main thread.
  void stop();

  std::vector<NameStatus> status() const;  // any thread

 private:
  struct NameState {
    std::shared_ptr<const ManagedCertificate> current;
    Clock::time_point next_attempt{};
    unsigned consecutive_failures = 0;
    uint64_t failures = 0;
    std::string last_error;
  };

  // The time picked in a CA's ARI window: kept while the window stays the same, so re-fetching
  // (as Retry-After asks) does not re-draw and skew renewals towards the window's end.
  struct AriPick {
    Clock::time_point start;
    Clock::time_point end;
    Clock::time_point pick;
  };

  struct Session;

  void run();
  // Handles |name| if it is due; returns when it next needs attention.
  Clock::time_point process(const std::string& name);
  // Loads |name| from storage when it holds a valid certificate newer than the current one.
  bool load_stored(const std::string& name);
  void publish(const std::string& name, std::shared_ptr<const ManagedCertificate> cert);
  Result<std::shared_ptr<const ManagedCertificate>> order(const std::string& name);
  Clock::time_point renewal_due(const ManagedCertificate& cert);
  // ACME thread only.
  std::map<std::string, AriPick> ari_picks_;
  bool stopping() const;

  config::Acme config_;
  CertStore& store_;
  ChallengeStore& challenges_;
  std::mt19937_64 rng_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::map<std::string, NameState> names_;
  std::unique_ptr<Session> session_;  // ACME thread's, after start()
  std::thread thread_;
};

}  // namespace fd::acme
