#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>

namespace fd::proxy {

// The process's TLS session ticket keys: one ring shared by every SSL_CTX (all certificates,
// all worker threads, and the contexts of later reloads), so a ticket issued by any worker is
// accepted by all of them and survives a reload. rotate() adds a fresh random key that
// encrypts new tickets; the previous ones still decrypt until they fall off the ring, which
// bounds how long a stolen key or an old ticket is of use (about |size| rotation intervals).
class TicketKeys {
 public:
  static constexpr size_t NAME_BYTES = 16;

  // |size|: keys kept, the newest first (at least 1).
  explicit TicketKeys(size_t size);
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // A new encrypting key; the oldest beyond |size| is dropped. Any thread.
  void rotate();
  // Names of the keys, newest first (for tests and logs).
  std::deque<std::array<unsigned char, NAME_BYTES>> names() const;

  // Makes |ctx| use this ring for its tickets. |this| must outlive the context.
  void install(SSL_CTX* ctx) const;

 private:
  struct Key {
    std::array<unsigned char, NAME_BYTES> name;
    std::array<unsigned char, 32> aes;   // AES-256-CBC, as OpenSSL's own ticket format
    std::array<unsigned char, 32> hmac;  // HMAC-SHA256
  };

  // OpenSSL's SSL_CTX_set_tlsext_ticket_key_evp_cb contract: 1 = encrypted or decrypted with
  // the current key, 2 = decrypted with an older one (issue a new ticket), 0 = unknown key
  // (full handshake), -1 = error.
  static int on_ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                       EVP_MAC_CTX* mac, int encrypt);
  static bool init_mac(EVP_MAC_CTX* mac, const Key& key);

  size_t size_;
  mutable std::mutex mu_;
  std::deque<Key> keys_;  // newest first
};

}  // namespace fd::proxy
