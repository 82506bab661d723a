#pragma once

#include <functional>
#include <string>

#include "common/result.h"

namespace fd::acme {

// The on-disk state under tls.acme.storage, shared safely by several frontdoor replicas:
//   <dir>/                                   0700
//   <dir>/accounts/<ca>/account.key          account key PEM, 0600 (<ca> = directory
//   host_port_path, sanitized) <dir>/accounts/<ca>/account.json         {"url": ...}
//   <dir>/certificates/<ca>/<name>/chain.pem certificate chain PEM (leaf first)
//   <dir>/certificates/<ca>/<name>/key.pem   its key, 0600
//   <dir>/certificates/<ca>/<name>/state.json the last attempt: {"last_error","next_attempt"}
//   <dir>/locks/<ca>-<name>.lock             flock()ed around an order
//   <dir>/challenges/<token>                 open http-01 key authorizations, so that every
//                                            replica sharing the storage can answer them
// Every file is written atomically: temp file in the same directory, fsync, rename, fsync dir.
class Storage {
 public:
  Storage(std::string dir, std::string directory_url);

  // Creates the directories (0700). Call once before anything else.
  Result<void> prepare();

  Result<std::string> read_account_key() const;  // Errc::io with "not found" when absent
  Result<void> write_account_key(const std::string& pem);
  Result<std::string> read_account_url() const;
  Result<void> write_account_url(const std::string& url);

  Result<std::string> read_chain(const std::string& name) const;
  Result<std::string> read_key(const std::string& name) const;
  // Writes the key first, then the chain, so a chain on disk always has its key.
  Result<void> write_certificate(const std::string& name, const std::string& chain_pem,
                                 const std::string& key_pem);

  // The renewal state of |name| as JSON text, for `frontdoor acme status`.
  Result<std::string> read_state(const std::string& name) const;
  Result<void> write_state(const std::string& name, const std::string& json);

  // http-01 answers shared between replicas. |token| must be base64url.
  Result<void> write_challenge(const std::string& token, const std::string& key_authorization);
  void remove_challenge(const std::string& token);
  Result<std::string> read_challenge(const std::string& token) const;

  // An exclusive flock on the name's lock file, held until destruction. Waits until it is
  // taken, or fails ("abandoned") as soon as |give_up| (may be empty) returns true.
  class Lock {
   public:
    ~Lock();
    Lock(Lock&& other) noexcept;
    Lock& operator=(Lock&&) = delete;
    Lock(const Lock&) = delete;

   private:
    friend class Storage;
    explicit Lock(int fd) : fd_(fd) {}
    int fd_;
  };
  Result<Lock> lock(const std::string& name, const std::function<bool()>& give_up = {});

  // Writes |data| to |path| atomically with |mode|. Exposed for tests.
  static Result<void> write_atomic(const std::string& path, const std::string& data, int mode);

 private:
  std::string dir_;
  std::string ca_;  // sanitized directory URL, one folder per CA
};

}  // namespace fd::acme
