#pragma once

#include <list>
#include <memory>
#include <string>

#include "proxy/body_pace.h"
#include "proxy/downstream_stream.h"
#include "proxy/event_loop.h"
#include "proxy/exchange.h"
#include "proxy/header_rewrite.h"
#include "proxy/http1_parser.h"
#include "proxy/http2_session.h"
#include "proxy/snapshot.h"
#include "proxy/tls_context.h"
#include "proxy/transport.h"

namespace fd::proxy {

class Worker;

// One client connection over TCP or TLS. Owns its transport, timers and codec: HTTP/1.1 (its
// parser and the current Exchange, one request at a time; pipelined ones wait in the input
// buffer), or HTTP/2 when TLS negotiated "h2" (an Http2Session whose streams own their
// exchanges). Owned by its Worker; every way out goes through close(), which unlinks it and
// defer-deletes it.
class DownstreamConnection : public Deferrable,
                             public DownstreamStream,
                             private Transport::Handler,
                             private Http1Parser::Handler,
                             private Http2Session::Handler {
 public:
  DownstreamConnection(Worker& worker, std::shared_ptr<const RuntimeSnapshot> snapshot,
                       size_t listener_index, ClientInfo client);
  ~DownstreamConnection() override;

  // Wraps the accepted |fd| (ownership taken). False if the transport could not be made; the
  // caller then drops the connection.
  bool start(int fd);

  // Graceful shutdown: close now if idle, else after the current response. HTTP/2: GOAWAY
  // with the last stream id; open streams finish, then the connection closes.
  void drain();
  // A reload: requests that start from now on use |snapshot|; a running exchange finishes on
  // its own. Worker thread.
  void adopt(std::shared_ptr<const RuntimeSnapshot> snapshot);
  // Moves a running exchange whose configuration generation is below |below| onto this
  // connection's one, so the old one can be freed; when its upstream is gone from the new
  // configuration the connection is closed (deferred). True if it was closed. Worker thread.
  // HTTP/2: the same per stream, cutting only the streams that cannot move (true if any).
  bool retire_old_exchange(uint64_t below);
  // The listening address this connection was accepted on (listen_key()).
  const std::string& listener_key() const { return listener_key_; }
  // The single close path: stops I/O and timers, aborts the exchange, unlinks, defer-deletes.
  void close(const char* why);

  // Set by the worker when it links the connection, used to unlink it in O(1).
  std::list<std::unique_ptr<DownstreamConnection>>::iterator self;

  // DownstreamStream
  void send_head(const ResponseHead& head) override;
  void send_body(const char* data, size_t len) override;
  void send_end() override;
  size_t buffered() const override;
  void pause_request_body(bool paused) override;
  void reset() override;
  void on_exchange_done() override;
  const ClientInfo& client() const override { return client_; }
  bool can_tunnel() const override { return !h2_; }
  void start_tunnel() override;

 private:
  enum class Phase {
    handshake,  // TLS handshake or waiting for the first byte of the first request
    head,       // receiving a request head
    exchange,   // an exchange is running
    idle,       // keep-alive, between requests
    tunnel,     // after a 101: raw bytes to and from the exchange, never HTTP again
    closing,    // flushing the last bytes before closing
    lingering,  // output done, discarding what the client still sends before closing
  };

  // Transport::Handler
  void on_readable() override;
  void on_drained() override;
  void on_connected() override;
  void on_closed(bool eof, bool timeout, const std::string& reason) override;
  // Http1Parser::Handler
  bool on_head() override;
  void on_body(const char* data, size_t len) override;
  void on_message_complete() override;
  // Http2Session::Handler
  void on_stream_request(Http2Stream& stream) override;
  void on_session_activity() override;

  // After the TLS handshake: starts an Http2Session when ALPN chose "h2". False if that
  // failed and the connection was closed.
  bool choose_codec();
  void on_h2_readable();

  // Parses buffered input and advances between requests; re-entrant calls return at once.
  void process_input();
  // After an exchange: keep-alive to the next request, or close.
  void after_exchange();
  // Answers an ACME http-01 request on a plain listener; false if |path| is not one.
  bool answer_acme_challenge(std::string_view path);
  // Answers without an exchange (parse errors, redirects, timeouts), then closes or continues.
  void respond_direct(int status, const std::string& body, const std::string& extra_headers,
                      bool close_after);
  void close_after_flush(bool linger);
  void finish_close();
  void on_timer();
  // h2: checks every stream still receiving a body against the body limits (408 for a slow
  // one), and re-arms the check while any is left.
  void check_h2_bodies();
  // Phase exchange with the request body still coming: 408 if it is too slow.
  void check_request_body();
  // Phase tunnel: hands the buffered client bytes to the exchange.
  void relay_tunnel();

  Worker& worker_;
  std::shared_ptr<const RuntimeSnapshot> snapshot_;
  std::shared_ptr<const TlsContextSet> tls_;  // certificates of this connection's handshake
  const config::Listener listener_;           // a copy: it outlives reloads of the configuration
  const std::string listener_key_;
  ClientInfo client_;
  std::unique_ptr<Transport> transport_;
  Http1Parser parser_;
  std::unique_ptr<Exchange> exchange_;
  std::unique_ptr<Http2Session> h2_;  // set when the connection speaks HTTP/2
  bool codec_chosen_ = false;
  Phase phase_ = Phase::handshake;
  BodyFraming framing_ = BodyFraming::none;
  bool keep_alive_ = true;      // the current request allows another one after it
  bool draining_ = false;       // drain() was called: no request after the current one
  bool h2_body_timer_ = false;  // h2: timer_ runs the body checks, not the idle timeout
  bool request_done_ = false;   // the current request has been read completely
  bool exchange_done_ = false;  // the exchange finished; after_exchange() pending
  bool body_paused_ = false;
  bool in_process_ = false;
  bool closed_ = false;
  bool linger_ = false;
  // Phase tunnel: when a byte last went either way, for the idle timeout.
  std::chrono::steady_clock::time_point tunnel_activity_;
  BodyPace body_pace_;      // the current HTTP/1.1 request body, for the body limits
  uint32_t requests_ = 0;  // request heads read on this connection (HTTP/1.1) or streams (h2)
  // Declared last: destroyed first, so its callback never sees a half-destroyed connection.
  Timer timer_;
};

}  // namespace fd::proxy
