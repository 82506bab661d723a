// The TLS half of Transport: the only code besides tls_context.cc that includes <openssl/ssl.h>.
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/ossl.h"
#include "proxy/transport.h"

namespace fd::proxy {
namespace {

// A libevent OpenSSL bufferevent over the socket. It owns the bufferevent, the SSL* and the fd
// (no BEV_OPT_CLOSE_ON_FREE) and frees them in that order: libevent's OpenSSL code may still
// touch the SSL after our read callback returns, hence the deferred destruction of owners.
class TlsTransport final : public Transport {
 public:
  TlsTransport(bufferevent* bev, SSL* ssl, int fd, Handler* handler)
      : Transport(fd, handler), bev_(bev), ssl_(ssl) {
    bufferevent_setcb(bev_, &TlsTransport::on_read, &TlsTransport::on_write,
                      &TlsTransport::on_event, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
  }

  ~TlsTransport() override {
    bufferevent_free(bev_);
    SSL_free(ssl_);
    ::close(fd_);
  }

  evbuffer* input() const override { return bufferevent_get_input(bev_); }
  evbuffer* output() const override { return bufferevent_get_output(bev_); }

  void enable_read(bool on) override {
    if (closed_) {
      return;
    }
    if (on) {
      bufferevent_enable(bev_, EV_READ);
    } else {
      bufferevent_disable(bev_, EV_READ);
    }
  }

  bool reading() const override { return (bufferevent_get_enabled(bev_) & EV_READ) != 0; }

  void set_watermarks(size_t max_input, size_t write_low) override {
    bufferevent_setwatermark(bev_, EV_READ, 0, max_input);
    bufferevent_setwatermark(bev_, EV_WRITE, write_low, 0);
  }

  void set_timeouts(std::chrono::milliseconds read, std::chrono::milliseconds write) override {
    timeval r = to_timeval(read);
    timeval w = to_timeval(write);
    bufferevent_set_timeouts(bev_, read.count() > 0 ? &r : nullptr,
                             write.count() > 0 ? &w : nullptr);
  }

  void shutdown_tls() override {
    if (closed_ || shutdown_sent_) {
      return;
    }
    shutdown_sent_ = true;
    ERR_clear_error();
    // Non-blocking: sends close_notify if the socket takes it; we do not wait for the peer's.
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }

  void close() override {
    if (closed_) {
      return;
    }
    closed_ = true;
    bufferevent_setcb(bev_, nullptr, nullptr, nullptr, nullptr);
    bufferevent_disable(bev_, EV_READ | EV_WRITE);
  }

  bool is_tls() const override { return true; }

  std::string alpn() const override {
    const unsigned char* data = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl_, &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
  }

  std::string server_name() const override {
    const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    return name != nullptr ? std::string(name) : std::string();
  }

 private:
  static void on_read(bufferevent*, void* arg) {
    static_cast<TlsTransport*>(arg)->handler_->on_readable();
  }

  static void on_write(bufferevent*, void* arg) {
    static_cast<TlsTransport*>(arg)->handler_->on_drained();
  }

  static void on_event(bufferevent*, short what, void* arg) {
    auto* self = static_cast<TlsTransport*>(arg);
    if ((what & BEV_EVENT_CONNECTED) != 0) {
      self->handler_->on_connected();
      return;
    }
    bool eof = (what & BEV_EVENT_EOF) != 0;
    bool timeout = (what & BEV_EVENT_TIMEOUT) != 0;
    std::string reason = eof ? "peer closed" : timeout ? "timeout" : self->error_reason(what);
    self->handler_->on_closed(eof, timeout, reason);
  }

  // Reason text for an error event: OpenSSL's queue, else errno.
  std::string error_reason(short what) const {
    std::string reason;
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
    if (reason.empty()) {
      int err = EVUTIL_SOCKET_ERROR();
      reason = err != 0 ? std::strerror(err) : "connection error";
    }
    return ((what & BEV_EVENT_READING) != 0 ? "read: " : "write: ") + reason;
  }

  bufferevent* bev_;
  SSL* ssl_;
  bool shutdown_sent_ = false;
};

}  // namespace

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
  return std::make_unique<TlsTransport>(bev, ssl, fd, handler);
}

}  // namespace fd::proxy
