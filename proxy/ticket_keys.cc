#include "proxy/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace fd::proxy {
namespace {

// Where install() leaves the ring for on_ticket, which gets only the SSL.
int ring_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

TicketKeys::TicketKeys(size_t size) : size_(std::max<size_t>(size, 1)) {
  rotate();
}

void TicketKeys::rotate() {
  Key key;
  if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
      RAND_bytes(key.aes.data(), static_cast<int>(key.aes.size())) != 1 ||
      RAND_bytes(key.hmac.data(), static_cast<int>(key.hmac.size())) != 1) {
    // Without randomness no key is safe; the ring keeps what it has.
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  keys_.push_front(key);
  while (keys_.size() > size_) {
    keys_.pop_back();
  }
}

std::deque<std::array<unsigned char, TicketKeys::NAME_BYTES>> TicketKeys::names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::deque<std::array<unsigned char, NAME_BYTES>> out;
  for (const auto& k : keys_) {
    out.push_back(k.name);
  }
  return out;
}

void TicketKeys::install(SSL_CTX* ctx) const {
  SSL_CTX_set_ex_data(ctx, ring_index(), const_cast<TicketKeys*>(this));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TicketKeys::on_ticket);
}

bool TicketKeys::init_mac(EVP_MAC_CTX* mac, const Key& key) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key.hmac.data()),
                                        key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

int TicketKeys::on_ticket(SSL* ssl, unsigned char* name, unsigned char* iv,
                          EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  // Every context of ours carries the ring; one that does not (an acme-tls/1 challenge
  // context) neither issues nor accepts tickets.
  const auto* self = static_cast<const TicketKeys*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ring_index()));
  if (self == nullptr) {
    return 0;
  }
  Key key;
  bool current = true;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    if (self->keys_.empty()) {
      return 0;  // the first key could not be made: no tickets rather than a weak one
    }
    if (encrypt == 1) {
      key = self->keys_.front();
    } else {
      auto it = std::find_if(self->keys_.begin(), self->keys_.end(), [name](const Key& k) {
        return std::memcmp(k.name.data(), name, NAME_BYTES) == 0;
      });
      if (it == self->keys_.end()) {
        return 0;
      }
      key = *it;
      current = it == self->keys_.begin();
    }
  }
  if (encrypt == 1) {
    std::memcpy(name, key.name.data(), NAME_BYTES);
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
        EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1 ||
        !init_mac(mac, key)) {
      return -1;
    }
    return 1;
  }
  if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1 ||
      !init_mac(mac, key)) {
    return -1;
  }
  return current ? 1 : 2;
}

}  // namespace fd::proxy
