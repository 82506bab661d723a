#pragma once

#include <event2/buffer.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "proxy/event_loop.h"

struct ssl_st;

namespace fd::proxy {

// A byte stream over a socket, plain or TLS, both on raw libevent events (socket_transport.h).
// tls_transport.cc is the only file besides tls_context.cc that touches a live SSL*.
//
// Ownership: a Transport owns its socket (and its SSL*) and frees them in its destructor.
// close() only silences it. Callbacks may still be on the stack of a transport's own libevent
// callback when its owner decides to go, so the destructor must not run inside one: owners die
// through EventLoop::defer_delete.
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

  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  virtual evbuffer* input() const = 0;
  virtual evbuffer* output() const = 0;
  // Bytes written to output() that the kernel has not taken yet; TLS adds the records it has
  // sealed but not sent. Zero means a close now loses nothing.
  virtual size_t unsent() const { return evbuffer_get_length(output()); }

  // The handler is replaced when a pooled upstream connection changes hands.
  void set_handler(Handler* handler) { handler_ = handler; }

  virtual void enable_read(bool on) = 0;
  virtual bool reading() const = 0;
  // Reading stops while input() holds |max_input| bytes; on_drained fires at |write_low|.
  virtual void set_watermarks(size_t max_input, size_t write_low) = 0;
  // Fires on_closed(timeout) when reading stalls |read| long, or a pending write makes no
  // progress for |write|. Zero disables either.
  virtual void set_timeouts(std::chrono::milliseconds read, std::chrono::milliseconds write) = 0;

  // TLS only: sends close_notify once (call when output() is empty). No-op for TCP.
  virtual void shutdown_tls() {}
  // Half-closes the socket for writing (after the last response byte).
  void shutdown_write();
  // Stops all callbacks and I/O now; resources are released by the destructor.
  virtual void close() = 0;
  bool closed() const { return closed_; }

  virtual bool is_tls() const { return false; }
  // Negotiated ALPN protocol, "" if none or not TLS.
  virtual std::string alpn() const { return {}; }
  // Server name the client sent (SNI), "" if none or not TLS.
  virtual std::string server_name() const { return {}; }
  int fd() const { return fd_; }

 protected:
  Transport(int fd, Handler* handler) : fd_(fd), handler_(handler) {}
  // Requests go out as soon as they are written: no Nagle delay on small heads.
  static void set_nodelay(int fd);
  static timeval to_timeval(std::chrono::milliseconds ms);

  int fd_;
  Handler* handler_;
  bool closed_ = false;
};

}  // namespace fd::proxy
