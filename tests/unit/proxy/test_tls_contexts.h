#pragma once

#include <openssl/ssl.h>

#include <ctime>
#include <memory>

#include "tests/unit/acme/test_pki.h"

namespace fd::proxy::test {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// A server context with a fresh certificate for "localhost" (from a throwaway CA) and a client
// context that does not verify it: both ends of a TLS socketpair in a unit test.
struct TlsContexts {
  SslCtxPtr server;
  SslCtxPtr client;
};

inline TlsContexts make_tls_contexts() {
  auto ca = acme::test::make_test_ca("transport test CA");
  std::time_t now = std::time(nullptr);
  auto leaf = acme::test::make_test_leaf(ca, {"localhost"}, "0b", now - 3600, now + 3600);
  TlsContexts out{SslCtxPtr(SSL_CTX_new(TLS_server_method())),
                  SslCtxPtr(SSL_CTX_new(TLS_client_method()))};
  if (SSL_CTX_use_certificate(out.server.get(), leaf.cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(out.server.get(), leaf.key.get()) != 1) {
    out.server.reset();
  }
  return out;
}

}  // namespace fd::proxy::test
