// The TLS half of Transport: the only code besides tls_context.cc that includes <openssl/ssl.h>.
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/ossl.h"
#include "proxy/transport.h"

namespace fd::proxy {

std::unique_ptr<Transport> Transport::accept_tls(EventLoop& loop, int fd, ssl_st* ssl,
                                                 Handler* handler) {
  set_nodelay(fd);
  ERR_clear_error();
  bufferevent* bev =
      bufferevent_openssl_socket_new(loop.base(), fd, ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
  if (bev == nullptr) {
    // Without BEV_OPT_CLOSE_ON_FREE libevent has freed neither: both are still ours.
    SSL_free(ssl);
    ::close(fd);
    return nullptr;
  }
  // A peer that drops TCP without close_notify is an ordinary EOF, not an error.
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  std::unique_ptr<Transport> t(new Transport(bev, ssl, fd, handler));
  t->install_callbacks();
  return t;
}

void Transport::free_ssl(ssl_st* ssl) {
  SSL_free(ssl);
}

void Transport::shutdown_tls() {
  if (ssl_ == nullptr || closed_ || tls_shutdown_sent_) {
    return;
  }
  tls_shutdown_sent_ = true;
  ERR_clear_error();
  // Non-blocking: sends close_notify if the socket takes it; we do not wait for the peer's.
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::string Transport::alpn() const {
  if (ssl_ == nullptr) {
    return {};
  }
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string Transport::server_name() const {
  if (ssl_ == nullptr) {
    return {};
  }
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? std::string(name) : std::string();
}

std::string Transport::error_reason(short what) const {
  std::string reason;
  if (ssl_ != nullptr) {
    unsigned long code;
    while ((code = bufferevent_get_openssl_error(bev_)) != 0) {
      char buf[256];
      ERR_error_string_n(code, buf, sizeof buf);
      if (!reason.empty()) {
        reason += "; ";
      }
      reason += buf;
    }
    std::string queued = ossl::errors();
    if (!queued.empty()) {
      reason += reason.empty() ? queued : "; " + queued;
    }
  }
  if (reason.empty()) {
    int err = EVUTIL_SOCKET_ERROR();
    reason = err != 0 ? std::strerror(err) : "connection error";
  }
  if (connecting_) {
    return "connect: " + reason;
  }
  if ((what & BEV_EVENT_READING) != 0) {
    return "read: " + reason;
  }
  return "write: " + reason;
}

}  // namespace fd::proxy
