#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "proxy/event_loop.h"

struct ssl_st;

namespace fd::proxy {

// A byte stream over a socket, plain or TLS, built on a libevent bufferevent. The only code that
// touches a live SSL* is in tls_transport.cc.
//
// Ownership: the Transport owns the bufferevent, the SSL* and the fd (no BEV_OPT_CLOSE_ON_FREE),
// and frees them in its destructor, in that order. close() only silences it. Because libevent's
// OpenSSL code may still touch the SSL after our read callback returns, the destructor must not
// run inside one of this transport's callbacks: owners die through EventLoop::defer_delete.
class Transport {
 public:
  // What the owner of a transport hears. Called on the loop thread from libevent callbacks;
  // handlers must not destroy the transport's owner synchronously (defer_delete it).
  class Handler {
   public:
    virtual ~Handler() = default;
    // New bytes are in input().
    virtual void on_readable() = 0;
    // output() has fallen to the write low watermark (or to 0) after a write.
    virtual void on_drained() = 0;
    // Outgoing connect or TLS handshake completed.
    virtual void on_connected() {}
    // The peer closed (|eof| true) or the stream failed / timed out; |reason| says which.
    virtual void on_closed(bool eof, bool timeout, const std::string& reason) = 0;
  };

  // Plain TCP over an accepted, non-blocking |fd| (ownership taken).
  static std::unique_ptr<Transport> accept_tcp(EventLoop& loop, int fd, Handler* handler);
  // TLS server side over an accepted |fd|; takes ownership of |fd| and |ssl| (made by
  // TlsContextSet::new_ssl). nullptr if libevent refuses (both are then freed here).
  static std::unique_ptr<Transport> accept_tls(EventLoop& loop, int fd, ssl_st* ssl,
                                               Handler* handler);
  // Starts a non-blocking TCP connect; on_connected or on_closed follows.
  static Result<std::unique_ptr<Transport>> connect_tcp(EventLoop& loop, const sockaddr* addr,
                                                        socklen_t len, Handler* handler);

  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  evbuffer* input() const { return bufferevent_get_input(bev_); }
  evbuffer* output() const { return bufferevent_get_output(bev_); }

  // The handler is replaced when a pooled upstream connection changes hands.
  void set_handler(Handler* handler) { handler_ = handler; }

  void enable_read(bool on);
  bool reading() const;
  // libevent stops reading while input() holds |max_input| bytes; on_drained fires at |low|.
  void set_watermarks(size_t max_input, size_t write_low);
  // Fires on_closed(timeout) when reading stalls |read| long, or a pending write makes no
  // progress for |write|. Zero disables either.
  void set_timeouts(std::chrono::milliseconds read, std::chrono::milliseconds write);

  // TLS only: sends close_notify once (call when output() is empty). No-op for TCP.
  void shutdown_tls();
  // Half-closes the socket for writing (after the last response byte).
  void shutdown_write();
  // Stops all callbacks and I/O now; resources are released by the destructor.
  void close();
  bool closed() const { return closed_; }

  bool is_tls() const { return ssl_ != nullptr; }
  // Negotiated ALPN protocol, "" if none or not TLS.
  std::string alpn() const;
  // Server name the client sent (SNI), "" if none or not TLS.
  std::string server_name() const;
  int fd() const { return fd_; }

 private:
  Transport(bufferevent* bev, ssl_st* ssl, int fd, Handler* handler);
  void install_callbacks();
  static void on_read(bufferevent*, void* arg);
  // Plain TCP: reads what else the socket holds after libevent's read, which takes 4096 bytes
  // at most (EVBUFFER_MAX_READ in libevent 2.1) and so cut a 16 KiB response into four loop
  // turns, each with its own write to the client and epoll_ctl calls. The end of the stream
  // and errors are left for libevent's next read to report.
  void read_more();
  static void on_write(bufferevent*, void* arg);
  static void on_event(bufferevent*, short what, void* arg);
  // Reason text for an error event: OpenSSL's queue for TLS, errno otherwise.
  std::string error_reason(short what) const;
  static void free_ssl(ssl_st* ssl);
  // Requests go out as soon as they are written: no Nagle delay on small heads.
  static void set_nodelay(int fd);

  bufferevent* bev_;
  ssl_st* ssl_;
  int fd_;
  Handler* handler_;
  bool closed_ = false;
  bool connecting_ = false;  // an outgoing connect has not completed yet
  bool tls_shutdown_sent_ = false;
  size_t max_input_ = 0;  // the read high watermark; 0 = none
};

}  // namespace fd::proxy
