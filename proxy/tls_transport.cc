// The TLS half of Transport: the only code besides tls_context.cc that includes <openssl/ssl.h>.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/ossl.h"
#include "proxy/socket_transport.h"

namespace fd::proxy {
namespace {

// Records sealed per write pass before they go to the socket in one write.
constexpr size_t WRITE_BATCH = 64 * 1024;

// SSL_get_error reads the thread's error queue, so the queue must be empty before each TLS
// call. ERR_clear_error walks all of its slots even when it is empty, at a cost near that of
// sealing a small record; looking first costs a fraction of that.
void clear_errors() {
  if (ERR_peek_error() != 0) {
    ERR_clear_error();
  }
}

// TLS over the socket through a BIO of our own. Reads go straight to read(2), with OpenSSL's
// read-ahead so that a record arrives in one call and a short read tells that the socket is
// empty. A write pass seals records into a per-thread batch and sends it with one write(2),
// where OpenSSL's socket BIO would make one per record. The BIO never refuses a write, so
// SSL_write and the handshake never want write: only the socket can be full, and then what it
// refused (or what a handshake or a read sealed) waits in |sealed_| like a plain TCP output.
class TlsTransport final : public SocketTransport {
 public:
  TlsTransport(EventLoop& loop, int fd, SSL* ssl, BIO* bio, Handler* handler)
      : SocketTransport(loop, fd, handler), ssl_(ssl), sealed_(evbuffer_new()) {
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);
    SSL_set_read_ahead(ssl_, 1);
    SSL_set_accept_state(ssl_);
    handshaking_ = true;
    start(false);
  }

  ~TlsTransport() override {
    SSL_free(ssl_);
    evbuffer_free(sealed_);
  }

  size_t unsent() const override {
    return evbuffer_get_length(out_) + evbuffer_get_length(sealed_);
  }

  void shutdown_tls() override {
    if (closed_ || shutdown_sent_) {
      return;
    }
    shutdown_sent_ = true;
    clear_errors();
    // Sends close_notify if the socket takes it now; we do not wait for the peer's.
    SSL_shutdown(ssl_);
    clear_errors();
    if (evbuffer_get_length(sealed_) > 0) {
      send_buffer(sealed_, fd_);
    }
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

  // The BIO's two directions.
  int socket_read(BIO* bio, char* buf, size_t len, size_t* got) {
    BIO_clear_retry_flags(bio);
    ssize_t n = ::recv(fd_, buf, len, 0);
    if (n > 0) {
      *got = static_cast<size_t>(n);
      socket_drained_ = static_cast<size_t>(n) < len;
      return 1;
    }
    if (n == 0) {
      peer_eof_ = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      socket_drained_ = true;
      BIO_set_retry_read(bio);
    } else {
      read_errno_ = errno;
    }
    return 0;
  }

  int seal(const char* data, size_t len, size_t* written) {
    if (batch_ != nullptr) {
      batch_->append(data, len);
    } else if (evbuffer_add(sealed_, data, len) != 0) {
      return 0;
    }
    *written = len;
    return 1;
  }

 private:
  bool input_buffered() const override { return !handshaking_ && SSL_has_pending(ssl_) == 1; }

  void read_available() override {
    if (handshaking_) {
      handshake();
      if (handshaking_ || closed_ || !reading()) {
        return;
      }
      if (SSL_has_pending(ssl_) == 0) {
        // Nothing came with the client's Finished: wait for epoll rather than reserve input
        // space and a record buffer that an idle connection would keep.
        SSL_free_buffers(ssl_);
        return;
      }
    }
    // epoll said readable: the socket holds bytes until a read comes back short.
    socket_drained_ = false;
    size_t total = 0;
    bool eof = false;
    std::string error;
    while (total < READ_MAX_PER_EVENT) {
      size_t want = read_size(total);
      if (want == 0) {
        break;
      }
      evbuffer_iovec vec;
      if (evbuffer_reserve_space(in_, static_cast<ev_ssize_t>(want), &vec, 1) != 1) {
        error = "read: out of memory";
        break;
      }
      clear_errors();
      int n = SSL_read(ssl_, vec.iov_base, static_cast<int>(std::min(vec.iov_len, want)));
      if (n <= 0) {
        evbuffer_commit_space(in_, &vec, 0);
        int code = SSL_get_error(ssl_, n);
        if (code == SSL_ERROR_ZERO_RETURN || peer_eof_) {
          eof = true;
        } else if (code == SSL_ERROR_WANT_READ) {
          // An idle connection keeps no record buffer (SSL_MODE_RELEASE_BUFFERS only frees
          // it after a record); this fails harmlessly while part of a record waits.
          SSL_free_buffers(ssl_);
        } else {
          error = "read: " + failure();
        }
        break;
      }
      vec.iov_len = static_cast<size_t>(n);
      evbuffer_commit_space(in_, &vec, 1);
      total += static_cast<size_t>(n);
      // Level-triggered epoll reports whatever arrives after a short read.
      if (socket_drained_ && SSL_has_pending(ssl_) == 0) {
        break;
      }
    }
    clear_errors();
    if (total >= READ_MAX_PER_EVENT && SSL_has_pending(ssl_) == 1) {
      schedule_read();
    }
    if (evbuffer_get_length(sealed_) > 0) {
      // Reading can answer the peer (a key update): send it.
      schedule_write();
    }
    finish_read(total, eof, error);
  }

  void handshake() {
    clear_errors();
    int n = SSL_do_handshake(ssl_);
    int code = n == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, n);
    std::string reason = code == SSL_ERROR_NONE || code == SSL_ERROR_WANT_READ ? "" : failure();
    clear_errors();
    if (evbuffer_get_length(sealed_) > 0) {
      write_pending();
      if (closed_) {
        return;
      }
    }
    if (code == SSL_ERROR_WANT_READ) {
      return;
    }
    if (code != SSL_ERROR_NONE) {
      if (peer_eof_) {
        handler_->on_closed(true, false, "peer closed");
      } else {
        handler_->on_closed(false, false, "handshake: " + reason);
      }
      return;
    }
    handshaking_ = false;
    update_read_event();
    handler_->on_connected();
    if (!closed_ && evbuffer_get_length(out_) > 0) {
      schedule_write();
    }
  }

  void write_pending() override {
    size_t before = unsent();
    for (;;) {
      if (evbuffer_get_length(sealed_) > 0) {
        ssize_t n = send_buffer(sealed_, fd_);
        if (n < 0 && !would_block(errno)) {
          handler_->on_closed(false, false, std::string("write: ") + std::strerror(errno));
          return;
        }
        if (evbuffer_get_length(sealed_) > 0) {
          break;
        }
      }
      if (handshaking_ || shutdown_sent_ || evbuffer_get_length(out_) == 0) {
        break;
      }
      // Nothing waits for the socket: seal a batch into this thread's buffer and send it from
      // there. Only what the socket refuses is copied into |sealed_|.
      std::string& batch = batch_buffer();
      batch.clear();
      batch_ = &batch;
      bool sealed = seal_output(batch);
      batch_ = nullptr;
      if (!sealed) {
        return;
      }
      ssize_t n = ::send(fd_, batch.data(), batch.size(), MSG_NOSIGNAL);
      if (n < 0 && !would_block(errno)) {
        handler_->on_closed(false, false, std::string("write: ") + std::strerror(errno));
        return;
      }
      size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
      if (sent < batch.size()) {
        evbuffer_add(sealed_, batch.data() + sent, batch.size() - sent);
        break;
      }
    }
    // Handshake flights are not the owner's bytes: their leaving is no drain to report.
    finish_write(handshaking_ ? 0 : before, evbuffer_get_length(sealed_) > 0);
  }

  static bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

  // Records sealed in a write pass go here; one per loop thread, reused by every connection.
  static std::string& batch_buffer() {
    static thread_local std::string batch;
    return batch;
  }

  // Seals output() into records in |batch|, a chunk at a time so that nothing is copied to
  // make it contiguous, until the batch is full. False once the failure is reported.
  bool seal_output(const std::string& batch) {
    while (batch.size() < WRITE_BATCH && evbuffer_get_length(out_) > 0) {
      evbuffer_iovec chunk;
      evbuffer_peek(out_, -1, nullptr, &chunk, 1);
      size_t len = std::min(chunk.iov_len, WRITE_BATCH);
      clear_errors();
      int n = SSL_write(ssl_, chunk.iov_base, static_cast<int>(len));
      if (n <= 0) {
        std::string reason = failure();
        clear_errors();
        handler_->on_closed(false, false, "write: " + reason);
        return false;
      }
      evbuffer_drain(out_, static_cast<size_t>(n));
    }
    return true;
  }

  // Why the last SSL call failed: OpenSSL's queue, else the socket's errno.
  std::string failure() const {
    std::string reason = ossl::errors();
    if (!reason.empty()) {
      return reason;
    }
    if (read_errno_ != 0) {
      return std::strerror(read_errno_);
    }
    return peer_eof_ ? "peer closed" : "connection error";
  }

  SSL* ssl_;
  evbuffer* sealed_;              // records sealed by OpenSSL, waiting for the socket
  std::string* batch_ = nullptr;  // set during a write pass: where records go instead
  bool shutdown_sent_ = false;
  bool socket_drained_ = false;
  bool peer_eof_ = false;
  int read_errno_ = 0;
};

int bio_write(BIO* bio, const char* data, size_t len, size_t* written) {
  return static_cast<TlsTransport*>(BIO_get_data(bio))->seal(data, len, written);
}

int bio_read(BIO* bio, char* buf, size_t len, size_t* got) {
  return static_cast<TlsTransport*>(BIO_get_data(bio))->socket_read(bio, buf, len, got);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  // OpenSSL flushes after each handshake flight; sealed records go out with the write pass.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

// Built once per process; BIO_METHOD is read-only after construction.
const BIO_METHOD* transport_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "frontdoor socket");
    if (m != nullptr) {
      BIO_meth_set_write_ex(m, &bio_write);
      BIO_meth_set_read_ex(m, &bio_read);
      BIO_meth_set_ctrl(m, &bio_ctrl);
      BIO_meth_set_create(m, &bio_create);
    }
    return m;
  }();
  return method;
}

}  // namespace

std::unique_ptr<Transport> Transport::accept_tls(EventLoop& loop, int fd, ssl_st* ssl,
                                                 Handler* handler) {
  set_nodelay(fd);
  const BIO_METHOD* method = transport_bio_method();
  BIO* bio = method != nullptr && ssl != nullptr ? BIO_new(method) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl);
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<TlsTransport>(loop, fd, ssl, bio, handler);
}

}  // namespace fd::proxy
