#include "proxy/downstream_connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "common/log.h"
#include "proxy/access_log.h"
#include "proxy/worker.h"

namespace fd::proxy {
namespace {

// Response bytes below this in the output buffer let a paused upstream resume.
constexpr size_t WRITE_LOW_WATERMARK = 64 * 1024;
// Unparsed input beyond the head limit that we accept before libevent stops reading.
constexpr size_t INPUT_SLACK = 64 * 1024;
// How long we keep reading (and discarding) after answering a request we did not read whole,
// so the client sees our response instead of a reset.
constexpr std::chrono::milliseconds LINGER_TIME{2000};
// RFC 9113 §5.1.2: the SETTINGS_MAX_CONCURRENT_STREAMS we announce (nghttpx and Envoy use 100).
constexpr uint32_t H2_MAX_CONCURRENT_STREAMS = 100;

}  // namespace

DownstreamConnection::DownstreamConnection(Worker& worker,
                                           std::shared_ptr<const RuntimeSnapshot> snapshot,
                                           size_t listener_index, ClientInfo client)
    : worker_(worker),
      snapshot_(std::move(snapshot)),
      tls_(worker.tls()),
      listener_(snapshot_->config().listeners[listener_index]),
      listener_key_(listen_key(listener_.endpoint)),
      client_(std::move(client)),
      parser_(Http1Parser::Kind::request, this, snapshot_->config().limits.max_header_bytes,
              snapshot_->config().limits.max_headers),
      timer_(worker.loop(), [this] { on_timer(); }) {}

DownstreamConnection::~DownstreamConnection() = default;

bool DownstreamConnection::start(int fd) {
  if (listener_.tls) {
    transport_ = Transport::accept_tls(worker_.loop(), fd, tls_->new_ssl(), this);
  } else {
    transport_ = Transport::accept_tcp(worker_.loop(), fd, this);
  }
  if (!transport_) {
    return false;
  }
  const config::Limits& limits = snapshot_->config().limits;
  transport_->set_watermarks(limits.max_header_bytes + INPUT_SLACK, WRITE_LOW_WATERMARK);
  // A client that stops reading our response is dropped after the keep-alive idle time.
  transport_->set_timeouts(std::chrono::milliseconds(0), limits.idle_timeout);
  phase_ = Phase::head;
  timer_.arm(limits.header_timeout);
  return true;
}

void DownstreamConnection::drain() {
  draining_ = true;
  keep_alive_ = false;
  if (h2_) {
    if (!closed_) {
      h2_->drain();
    }
    return;
  }
  if ((phase_ == Phase::head && !parser_.in_message()) || phase_ == Phase::idle) {
    close("shutdown");
  }
}

void DownstreamConnection::adopt(std::shared_ptr<const RuntimeSnapshot> snapshot) {
  snapshot_ = std::move(snapshot);
}

bool DownstreamConnection::retire_old_exchange(uint64_t below) {
  if (h2_) {
    bool cut = false;
    for (Http2Stream* stream : h2_->streams()) {
      Exchange* x = stream->exchange();
      if (closed_ || x == nullptr || x->snapshot().generation() >= below || x->rebase(snapshot_)) {
        continue;
      }
      log::warn("request cut: its upstream left the configuration",
                {{"client", client_.ip}, {"path", x->request().target}});
      stream->cut("configuration retired");
      cut = true;
    }
    return cut;
  }
  if (!exchange_ || closed_ || exchange_->snapshot().generation() >= below) {
    return false;
  }
  if (exchange_->rebase(snapshot_)) {
    return false;
  }
  log::warn(
      "request cut: its upstream left the configuration",
      {{"client", client_.ip}, {"path", exchange_->request().target}});
  close("configuration retired");
  return true;
}

void DownstreamConnection::close(const char* why) {
  if (closed_) {
    return;
  }
  closed_ = true;
  timer_.cancel();
  transport_->close();
  if (h2_) {
    h2_->abort_all(why);
  }
  if (exchange_) {
    exchange_->abort(why);
    worker_.loop().defer_delete(std::move(exchange_));
  }
  worker_.remove(this);
}

void DownstreamConnection::on_connected() {
  // The TLS handshake completed: an h2 server speaks first (its SETTINGS).
  choose_codec();
}

bool DownstreamConnection::choose_codec() {
  if (codec_chosen_) {
    return !closed_;
  }
  codec_chosen_ = true;
  if (!transport_->is_tls() || transport_->alpn() != "h2") {
    return true;
  }
  Http2Session::Settings settings;
  settings.max_concurrent_streams = H2_MAX_CONCURRENT_STREAMS;
  settings.max_header_list_size =
      static_cast<uint32_t>(snapshot_->config().limits.max_header_bytes);
  auto session =
      Http2Session::create(worker_.loop(), transport_->output(), *this, client_, settings);
  if (!session) {
    log::error("cannot start an http2 session",
               {{"client", client_.ip}, {"reason", session.error().message}});
    close("http2 session failed");
    return false;
  }
  h2_ = std::move(*session);
  h2_->send();
  return !closed_;
}

void DownstreamConnection::on_h2_readable() {
  if (!h2_->receive(transport_->input()) && !closed_) {
    close_after_flush(false);
  }
}

void DownstreamConnection::on_stream_request(Http2Stream& stream) {
  const config::Limits& limits = snapshot_->config().limits;
  stream.attach(std::make_unique<Exchange>(stream, worker_, snapshot_, stream.take_request()));
  if (stream.receiving_body()) {
    auto first_check = stream.body_pace().start(std::chrono::steady_clock::now(),
                                                limits.body_timeout, limits.body_min_rate);
    if (!h2_body_timer_) {
      h2_body_timer_ = true;
      timer_.arm(first_check);
    }
  }
  // As on HTTP/1.1, a connection serves a bounded number of requests: GOAWAY after this one
  // (the client opens a new connection for the next).
  if (++requests_ == limits.max_requests_per_connection) {
    h2_->drain();
  }
}

void DownstreamConnection::on_session_activity() {
  if (closed_ || phase_ == Phase::closing || phase_ == Phase::lingering) {
    return;
  }
  if (h2_->finished()) {
    close_after_flush(false);
    return;
  }
  if (h2_->open_streams() > 0) {
    if (!h2_body_timer_) {
      timer_.cancel();
    }
  } else if (!timer_.armed() || h2_body_timer_) {
    h2_body_timer_ = false;
    timer_.arm(snapshot_->config().limits.idle_timeout);
  }
}

void DownstreamConnection::on_readable() {
  if (!choose_codec()) {
    return;
  }
  if (phase_ == Phase::lingering || phase_ == Phase::closing) {
    evbuffer_drain(transport_->input(), evbuffer_get_length(transport_->input()));
    return;
  }
  if (h2_) {
    on_h2_readable();
    return;
  }
  process_input();
}

void DownstreamConnection::process_input() {
  if (in_process_ || closed_) {
    return;
  }
  in_process_ = true;
  evbuffer* in = transport_->input();
  while (!closed_) {
    if (exchange_done_) {
      exchange_done_ = false;
      after_exchange();
      continue;
    }
    if (phase_ == Phase::tunnel) {
      relay_tunnel();
      break;
    }
    if (phase_ == Phase::closing || phase_ == Phase::lingering || request_done_ || body_paused_ ||
        evbuffer_get_length(in) == 0) {
      break;
    }
    if (phase_ == Phase::idle) {
      phase_ = Phase::head;
      timer_.arm(snapshot_->config().limits.header_timeout);
    }
    evbuffer_iovec seg;
    if (evbuffer_peek(in, -1, nullptr, &seg, 1) < 1) {
      break;
    }
    auto out = parser_.execute(static_cast<const char*>(seg.iov_base), seg.iov_len);
    evbuffer_drain(in, out.consumed);
    if (out.status != Http1Parser::Status::error) {
      continue;
    }
    log::info("bad request",
              {{"client", client_.ip}, {"status", out.http_status}, {"reason", out.reason}});
    if (exchange_) {
      // The head was fine but the body framing is not: answer 400 unless the response has
      // started, and never read from this connection again.
      keep_alive_ = false;
      exchange_->reject_request(400, "invalid request body: " + out.reason);
    } else {
      respond_direct(out.http_status, std::string(reason_phrase(out.http_status)) + "\n", "", true);
    }
  }
  in_process_ = false;
}

bool DownstreamConnection::on_head() {
  timer_.cancel();
  phase_ = Phase::exchange;
  RequestHead& req = parser_.request();
  // After an upgrade request llhttp expects the bytes that follow to be another protocol, so
  // a refused upgrade does not go back to parsing HTTP on this connection either.
  ++requests_;
  keep_alive_ = req.keep_alive && !draining_ && !is_websocket_upgrade(req) &&
                requests_ < snapshot_->config().limits.max_requests_per_connection;
  if (!listener_.tls && answer_acme_challenge(req.target)) {
    return false;
  }
  if (listener_.redirect_https) {
    std::string host = request_host(req);
    if (host.empty()) {
      respond_direct(400, "a Host header is required\n", "", true);
      return false;
    }
    uint16_t port = listener_.https_port != 0 ? listener_.https_port : snapshot_->https_port();
    std::string location = "https://" + host + (port != 443 ? ":" + std::to_string(port) : "") +
                           req.target;
    respond_direct(308, "redirecting to " + location + "\n", "Location: " + location + "\r\n",
                   req.has_body());
    return false;
  }
  bool has_body = req.has_body();
  exchange_ = std::make_unique<Exchange>(*this, worker_, snapshot_, std::move(req));
  exchange_->start();
  if (has_body && !exchange_done_) {
    const auto& limits = snapshot_->config().limits;
    timer_.arm(body_pace_.start(std::chrono::steady_clock::now(), limits.body_timeout,
                                limits.body_min_rate));
  }
  return false;
}

bool DownstreamConnection::answer_acme_challenge(std::string_view path) {
  constexpr std::string_view PREFIX = "/.well-known/acme-challenge/";
  if (path.substr(0, PREFIX.size()) != PREFIX || !snapshot_->config().tls.acme_enabled) {
    return false;
  }
  auto key_authorization = worker_.challenges().http01(path.substr(PREFIX.size()));
  if (!key_authorization) {
    respond_direct(404, "no such challenge\n", "", parser_.request().has_body());
    return true;
  }
  log::info("acme http-01 challenge answered", {{"client", client_.ip}});
  respond_direct(200, *key_authorization, "", parser_.request().has_body());
  return true;
}

void DownstreamConnection::on_body(const char* data, size_t len) {
  body_pace_.on_bytes(len);
  if (exchange_ && !exchange_done_) {
    exchange_->on_request_body(data, len);
  }
}

void DownstreamConnection::on_message_complete() {
  request_done_ = true;
  if (phase_ == Phase::exchange) {
    timer_.cancel();  // the body check, if one was armed
  }
  if (exchange_ && !exchange_done_) {
    exchange_->on_request_complete();
  }
}

void DownstreamConnection::send_head(const ResponseHead& head) {
  evbuffer* out = transport_->output();
  if (head.status == 101) {
    // Only an Exchange proxying a WebSocket upgrade sends a 101; start_tunnel() follows.
    std::string text = build_upgrade_response(head);
    evbuffer_add(out, text.data(), text.size());
    framing_ = BodyFraming::until_close;
    keep_alive_ = false;
    return;
  }
  if (head.status < 200) {
    std::string interim = build_downstream_response(head, BodyFraming::none, false);
    evbuffer_add(out, interim.data(), interim.size());
    return;
  }
  const RequestHead& req = exchange_->request();
  bool http10 = req.version_major == 1 && req.version_minor == 0;
  framing_ = response_framing(head, exchange_->head_request(), http10);
  if (framing_ == BodyFraming::until_close || draining_) {
    keep_alive_ = false;
  }
  std::string text = build_downstream_response(head, framing_, !keep_alive_);
  evbuffer_add(out, text.data(), text.size());
}

void DownstreamConnection::send_body(const char* data, size_t len) {
  evbuffer* out = transport_->output();
  if (phase_ == Phase::tunnel) {
    tunnel_activity_ = std::chrono::steady_clock::now();
  }
  if (framing_ == BodyFraming::none || len == 0) {
    return;
  }
  if (framing_ == BodyFraming::chunked) {
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", len);
    evbuffer_add(out, size_line, static_cast<size_t>(n));
    evbuffer_add(out, data, len);
    evbuffer_add(out, "\r\n", 2);
    return;
  }
  evbuffer_add(out, data, len);
}

void DownstreamConnection::send_end() {
  if (framing_ == BodyFraming::chunked) {
    evbuffer_add(transport_->output(), "0\r\n\r\n", 5);
  }
}

size_t DownstreamConnection::buffered() const {
  return transport_->unsent();
}

void DownstreamConnection::pause_request_body(bool paused) {
  if (body_paused_ == paused || closed_) {
    return;
  }
  body_paused_ = paused;
  transport_->enable_read(!paused);
  if (!paused) {
    process_input();
  }
}

void DownstreamConnection::reset() {
  keep_alive_ = false;
}

void DownstreamConnection::start_tunnel() {
  if (closed_) {
    return;
  }
  phase_ = Phase::tunnel;
  keep_alive_ = false;
  tunnel_activity_ = std::chrono::steady_clock::now();
  timer_.arm(snapshot_->config().limits.idle_timeout);
  // Bytes the client sent after the upgrade request head are already waiting in the input.
  process_input();
}

void DownstreamConnection::relay_tunnel() {
  // Everything already read is handed on even while paused: reading stops at the socket, and
  // the input is bounded by the read watermark, so nothing is lost when EOF follows the data.
  evbuffer* in = transport_->input();
  while (!closed_ && phase_ == Phase::tunnel && exchange_ && !exchange_done_ &&
         evbuffer_get_length(in) > 0) {
    evbuffer_iovec seg;
    if (evbuffer_peek(in, -1, nullptr, &seg, 1) < 1) {
      break;
    }
    tunnel_activity_ = std::chrono::steady_clock::now();
    exchange_->on_tunnel_bytes(static_cast<const char*>(seg.iov_base), seg.iov_len);
    evbuffer_drain(in, seg.iov_len);
  }
}

void DownstreamConnection::on_exchange_done() {
  exchange_done_ = true;
  process_input();
}

void DownstreamConnection::after_exchange() {
  if (exchange_) {
    worker_.loop().defer_delete(std::move(exchange_));
  }
  if (body_paused_) {
    body_paused_ = false;
    transport_->enable_read(true);
  }
  if (!keep_alive_ || !request_done_ || draining_) {
    close_after_flush(!request_done_);
    return;
  }
  request_done_ = false;
  framing_ = BodyFraming::none;
  parser_.next_message();
  phase_ = Phase::idle;
  timer_.arm(snapshot_->config().limits.idle_timeout);
}

void DownstreamConnection::respond_direct(int status, const std::string& body,
                                          const std::string& extra_headers, bool close_after) {
  if (close_after) {
    keep_alive_ = false;
  }
  std::string text = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                     "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n" + extra_headers +
                     (keep_alive_ ? "" : "Connection: close\r\n") + "\r\n" + body;
  evbuffer_add(transport_->output(), text.data(), text.size());
  worker_.stats().unrouted.add(status);
  if (snapshot_->config().log.access && parser_.head_complete()) {
    const RequestHead& req = parser_.request();
    AccessRecord r;
    r.client = client_.ip;
    r.method = req.method;
    r.host = request_host(req);
    r.path = req.target;
    r.status = status;
    r.bytes_out = body.size();
    write_access_line(r);
  }
  exchange_done_ = true;
}

void DownstreamConnection::close_after_flush(bool linger) {
  phase_ = Phase::closing;
  linger_ = linger;
  timer_.cancel();
  if (buffered() == 0) {
    finish_close();
  }
}

void DownstreamConnection::finish_close() {
  transport_->shutdown_tls();
  if (!linger_) {
    close("done");
    return;
  }
  phase_ = Phase::lingering;
  transport_->shutdown_write();
  transport_->enable_read(true);
  timer_.arm(LINGER_TIME);
}

void DownstreamConnection::on_drained() {
  if (phase_ == Phase::closing) {
    if (buffered() == 0) {
      finish_close();
    }
    return;
  }
  if (h2_) {
    h2_->send();
    return;
  }
  if (exchange_ && !exchange_done_) {
    exchange_->on_downstream_drained();
  }
}

void DownstreamConnection::on_closed(bool eof, bool timeout, const std::string& reason) {
  if (eof && phase_ == Phase::tunnel && exchange_ && !exchange_done_) {
    // A half-close: relay what came before it, then let the exchange flush to the upstream
    // and finish, which closes this connection through after_exchange().
    relay_tunnel();
    transport_->enable_read(false);
    exchange_->on_tunnel_client_closed();
    return;
  }
  bool quiet =
      phase_ == Phase::lingering || (eof && phase_ == Phase::head && !parser_.in_message());
  if (!quiet && log::enabled(log::Level::debug)) {
    log::debug("client connection closed",
               {{"client", client_.ip}, {"eof", eof}, {"timeout", timeout}, {"reason", reason}});
  }
  close(eof ? "client closed the connection" : timeout ? "client write timeout" : "client error");
}

void DownstreamConnection::check_request_body() {
  if (request_done_ || !exchange_ || exchange_done_) {
    return;
  }
  auto now = std::chrono::steady_clock::now();
  std::chrono::milliseconds next;
  const char* reason = body_pace_.check(now, body_paused_, &next);
  if (reason == nullptr) {
    timer_.arm(next);
    return;
  }
  log::info("slow request body cut", {{"client", client_.ip},
                                      {"reason", reason},
                                      {"body_bytes", body_pace_.bytes()},
                                      {"ms", body_pace_.elapsed(now).count()}});
  keep_alive_ = false;
  exchange_->reject_request(408, reason);
}

void DownstreamConnection::check_h2_bodies() {
  auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::milliseconds> next;
  for (Http2Stream* stream : h2_->streams()) {
    if (!stream->receiving_body()) {
      continue;
    }
    std::chrono::milliseconds wait;
    const char* reason = stream->body_pace().check(now, stream->body_held(), &wait);
    if (reason == nullptr) {
      next = next ? std::min(*next, wait) : wait;
      continue;
    }
    log::info("slow request body cut", {{"client", client_.ip},
                                        {"stream", stream->id()},
                                        {"reason", reason},
                                        {"body_bytes", stream->body_pace().bytes()},
                                        {"ms", stream->body_pace().elapsed(now).count()}});
    stream->exchange()->reject_request(408, reason);
  }
  h2_body_timer_ = next.has_value();
  if (next) {
    timer_.arm(*next);
  }
  h2_->schedule_send();
}

void DownstreamConnection::on_timer() {
  if (h2_ && h2_body_timer_ && phase_ != Phase::closing && phase_ != Phase::lingering) {
    check_h2_bodies();
    return;
  }
  if (h2_ && phase_ != Phase::closing && phase_ != Phase::lingering) {
    // No stream for the idle time (or no first one within header_timeout): GOAWAY and close.
    h2_->terminate(NGHTTP2_NO_ERROR);
    if (!closed_ && phase_ != Phase::closing) {
      close_after_flush(false);
    }
    return;
  }
  switch (phase_) {
    case Phase::head:
      if (parser_.in_message()) {
        respond_direct(408, "request head not received in time\n", "", true);
        process_input();
      } else {
        close("header timeout");
      }
      return;
    case Phase::tunnel: {
      auto idle = snapshot_->config().limits.idle_timeout;
      auto quiet = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - tunnel_activity_);
      if (quiet < idle) {
        timer_.arm(idle - quiet);
      } else {
        close("tunnel idle timeout");
      }
      return;
    }
    case Phase::exchange:
      check_request_body();
      return;
    case Phase::idle:
      if (buffered() > 0) {
        timer_.arm(snapshot_->config().limits.idle_timeout);
      } else {
        close("idle timeout");
      }
      return;
    default:
      close("timeout");
      return;
  }
}

}  // namespace fd::proxy
