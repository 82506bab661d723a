#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "proxy/block_cache.h"
#include "proxy/downstream_stream.h"
#include "proxy/event_loop.h"
#include "proxy/header_rewrite.h"
#include "proxy/http_message.h"
#include "proxy/snapshot.h"
#include "proxy/upstream_connection.h"

namespace fd::proxy {

class Worker;

// One request and its response: routing, server choice, the upstream connection lease, header
// rewriting, body streaming with backpressure both ways, proxy-made errors and the access log.
// Owned by its DownstreamStream; dies through EventLoop::defer_delete.
class Exchange : public Deferrable, public BlockCached, private UpstreamConnection::Listener {
 public:
  enum class State {
    routing,     // head received, nothing sent upstream yet
    connecting,  // waiting for an upstream connection
    forwarding,  // request going upstream, waiting for or relaying the response
    tunnel,      // WebSocket upgrade answered 101: relaying raw bytes both ways until a close
    done,        // response complete or reset; only waits to be deleted
  };

  // |request| is the parsed head; |snapshot| is the configuration this request runs under.
  Exchange(DownstreamStream& stream, Worker& worker,
           std::shared_ptr<const RuntimeSnapshot> snapshot, RequestHead request);
  ~Exchange() override;

  // Routes the request and starts it upstream, or answers it locally (404, 413, 502...).
  void start();
  void on_request_body(const char* data, size_t len);
  void on_request_complete();
  // The client took response bytes: resume reading from upstream if we had paused.
  void on_downstream_drained();
  // State tunnel: raw bytes from the client for the upstream socket. |data| lives only during
  // the call; may pause the stream's reading (backpressure). Never destroys |this|.
  void on_tunnel_bytes(const char* data, size_t len);
  // State tunnel: the client half-closed. The exchange finishes (closing the upstream) once the
  // bytes queued for the upstream have been written. May call on_exchange_done() inside.
  void on_tunnel_client_closed();
  // Moves this exchange onto a newer configuration |snapshot|, so the one it started under can
  // be freed: its upstream must still exist there (by name). False, and nothing changed, when
  // it does not; the caller then cuts the exchange.
  bool rebase(const std::shared_ptr<const RuntimeSnapshot>& snapshot);
  const RuntimeSnapshot& snapshot() const { return *snapshot_; }
  // The client went away or the stream failed: release everything, log, finish.
  void abort(const std::string& reason);
  // The client's request failed after its head (a body too slow): answers |status| when no
  // response has started, else cuts like abort(); the upstream connection is not reused.
  void reject_request(int status, const std::string& reason);

  const RequestHead& request() const { return request_; }
  State state() const { return state_; }
  bool head_request() const { return request_.method == "HEAD"; }

 private:
  void on_upstream_connected() override;
  void on_upstream_head(ResponseHead& head) override;
  void on_upstream_body(const char* data, size_t len) override;
  void on_upstream_complete() override;
  void on_upstream_failure(UpstreamFailure failure, const std::string& reason) override;
  void on_upstream_drained() override;

  // Sends a short plain-text response made by the proxy and finishes the exchange.
  void respond_local(int status, const std::string& text);
  void add_hsts(ResponseHead& head) const;
  // Picks the server and leases or opens a connection to it.
  void begin_upstream();
  // Answers "Expect: 100-continue" itself (the upstream connection waits for the body).
  void answer_expect_continue();
  // Picks an untried available server of the group into |server_|; false if none.
  bool choose_server();
  // True when a failed attempt may go to another server: nothing of the body has left for
  // upstream, attempts and time remain.
  bool may_retry() const;
  void lease_connection(bool allow_pooled);
  // Writes the upstream request head, then what was queued while connecting, into the
  // connection's output.
  void flush_pending();
  evbuffer* request_sink();
  void queue_request_bytes(const char* data, size_t len, bool body);
  // Pools or drops the connection and stops counting this request as active on |server_|.
  void release_upstream();
  void finish();
  void write_access_log();

  DownstreamStream& stream_;
  Worker& worker_;
  std::shared_ptr<const RuntimeSnapshot> snapshot_;
  RequestHead request_;
  RequestId request_id_;
  const UpstreamGroup* group_ = nullptr;
  size_t group_index_ = 0;
  std::shared_ptr<UpstreamServer> server_;  // the server of the current (or last) attempt
  bool counted_active_ = false;             // |server_->active| includes this request
  std::vector<const UpstreamServer*> tried_;
  uint32_t retries_ = 0;
  std::unique_ptr<UpstreamConnection> upstream_;
  // Request body bytes queued before the connection is up; made on first use (most requests
  // have no body).
  evbuffer* pending_ = nullptr;
  State state_ = State::routing;
  bool request_done_ = false;
  bool head_written_ = false;   // the request head is in the current connection's output
  bool pending_body_ = false;   // |pending_| holds body bytes
  bool body_streamed_ = false;  // body bytes have left for upstream: not replayable any more
  bool response_head_sent_ = false;
  bool upstream_paused_ = false;
  bool stale_retried_ = false;
  bool awaiting_body_ = false;  // holding the first body bytes before connecting upstream
  bool websocket_ = false;      // a WebSocket upgrade forwarded as such on a non-pooled connection
  bool upgraded_ = false;       // the upstream answered 101: tunnel after its head
  bool client_closed_ = false;  // tunnel: the client sent EOF; finish once upstream is flushed
  int status_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  std::string error_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace fd::proxy
