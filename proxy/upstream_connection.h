#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "proxy/event_loop.h"
#include "proxy/http1_parser.h"
#include "proxy/transport.h"
#include "proxy/upstream_server.h"

namespace fd::proxy {

enum class UpstreamFailure {
  connect,   // could not connect
  timeout,   // connect, write or response timeout
  closed,    // closed or reset by the server
  protocol,  // unparsable response
};

// One HTTP/1.1 client connection to an upstream server. Used by one Exchange at a time, then
// parked in the worker's UpstreamPool while idle. Dies only through EventLoop::defer_delete.
class UpstreamConnection : public Deferrable,
                           private Transport::Handler,
                           private Http1Parser::Handler {
 public:
  // Whoever holds the connection now: an Exchange while a request runs, the pool while idle.
  // Called on the worker thread; must not destroy the connection synchronously.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void on_upstream_connected() {}
    // A response head arrived (1xx interim ones too).
    virtual void on_upstream_head(ResponseHead& head) { (void)head; }
    virtual void on_upstream_body(const char* data, size_t len) {
      (void)data;
      (void)len;
    }
    // The final response is complete; the connection may be handed on inside this call.
    virtual void on_upstream_complete() {}
    virtual void on_upstream_failure(UpstreamFailure failure, const std::string& reason) = 0;
    // The request bytes queued in output() have fallen below the low watermark.
    virtual void on_upstream_drained() {}
  };

  UpstreamConnection(EventLoop& loop, std::shared_ptr<UpstreamServer> server, Listener* listener);
  ~UpstreamConnection() override;

  // The one way to drop a connection: silences it at once (no callback reaches its last
  // listener again) and deletes it on the loop's next deferred pass.
  static void dispose(EventLoop& loop, std::unique_ptr<UpstreamConnection> conn);

  // Starts a non-blocking connect bounded by |timeout|.
  Result<void> connect(std::chrono::milliseconds timeout);
  bool connected() const { return connected_; }

  // Hands the connection to |listener| for one request. |head_request|: the response has no
  // body. The response timeout starts when request_sent() is called.
  void begin_request(Listener* listener, bool head_request);
  // All request bytes are queued: from now on a silence of |timeout| from the server fails.
  void request_sent(std::chrono::milliseconds timeout);
  evbuffer* output() const { return transport_->output(); }
  // Backpressure from the client side: stop reading response bytes while it cannot take them.
  void pause_reading(bool paused);
  // After a 101 was reported through on_upstream_complete(): the connection becomes a raw byte
  // tunnel. Every received byte (those already buffered after the head first) goes to the
  // listener's on_upstream_body unparsed, the server closing is reported as a failure of kind
  // closed, and timeouts are off (the client side owns the tunnel's idle timeout). Never
  // reusable afterwards. May call the listener inside.
  void start_tunnel();
  bool response_started() const { return response_started_; }
  // Safe to reuse for another request: response complete, keep-alive, nothing extra received.
  bool reusable() const { return reusable_; }
  // True once the connection has failed or closed; it is then only waiting to be deleted.
  bool failed() const { return failed_; }
  // True once this connection has completed at least one exchange.
  bool reused() const { return exchanges_ > 0; }

  // Parks the connection idle under |listener| (the pool): EOF, stray bytes or |idle_timeout|
  // report a failure so the pool can drop it.
  void park(Listener* listener, std::chrono::milliseconds idle_timeout);

  UpstreamServer& server() const { return *server_; }
  const std::shared_ptr<UpstreamServer>& server_ptr() const { return server_; }

 private:
  void on_readable() override;
  void on_drained() override;
  void on_connected() override;
  void on_closed(bool eof, bool timeout, const std::string& reason) override;
  bool on_head() override;
  void on_body(const char* data, size_t len) override;
  void on_message_complete() override;
  void process_input();
  // Tunnel mode: hands everything in the input buffer to the listener.
  void relay_tunnel();
  void fail(UpstreamFailure failure, const std::string& reason);

  EventLoop& loop_;
  std::shared_ptr<UpstreamServer> server_;
  Listener* listener_;
  std::unique_ptr<Transport> transport_;
  Http1Parser parser_;
  bool connected_ = false;
  bool head_request_ = false;
  bool in_request_ = false;
  bool response_started_ = false;
  bool message_done_ = false;
  bool paused_ = false;
  bool reusable_ = false;
  bool failed_ = false;
  bool tunnel_ = false;
  uint64_t exchanges_ = 0;
};

}  // namespace fd::proxy
