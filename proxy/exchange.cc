#include "proxy/exchange.h"

#include <algorithm>
#include <cstdio>

#include "common/log.h"
#include "proxy/access_log.h"
#include "proxy/header_rewrite.h"
#include "proxy/worker.h"

namespace fd::proxy {
namespace {

// Above this many queued request bytes the client is paused until upstream drains them.
constexpr size_t REQUEST_HIGH_WATERMARK = 256 * 1024;
// Body bytes held before a request with a body takes an upstream connection (the whole body
// when it is smaller). Below REQUEST_HIGH_WATERMARK, so reading never pauses before it.
constexpr size_t BODY_BEFORE_CONNECT = 64 * 1024;
// Above this many queued response bytes the upstream is paused until the client drains them.
constexpr size_t RESPONSE_HIGH_WATERMARK = 256 * 1024;

bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

}  // namespace

Exchange::Exchange(DownstreamStream& stream, Worker& worker,
                   std::shared_ptr<const RuntimeSnapshot> snapshot, RequestHead request)
    : stream_(stream),
      worker_(worker),
      snapshot_(std::move(snapshot)),
      request_(std::move(request)),
      started_(std::chrono::steady_clock::now()) {}

Exchange::~Exchange() {
  release_upstream();
  if (pending_ != nullptr) {
    evbuffer_free(pending_);
  }
}

void Exchange::start() {
  const std::string* client_id = request_.find("x-request-id");
  if (client_id != nullptr && is_valid_request_id(*client_id)) {
    request_id_.assign(*client_id);
  } else {
    request_id_ = worker_.next_request_id();
  }
  const config::Config& cfg = snapshot_->config();
  if (cfg.limits.max_body_bytes > 0 && request_.content_length > 0 &&
      static_cast<uint64_t>(request_.content_length) > cfg.limits.max_body_bytes) {
    respond_local(413, "request body larger than the limit");
    return;
  }
  std::string host = request_host(request_);
  auto group = snapshot_->router().route(host, request_.target);
  if (!group) {
    respond_local(404, "no route for this host and path");
    return;
  }
  group_index_ = *group;
  group_ = &snapshot_->group(group_index_);
  if (request_.has_body() && !request_done_) {
    // Hold the body's first bytes before taking an upstream connection, so that clients
    // sending bodies slowly (slowloris' POST variant) hold no upstream connection while
    // body_min_rate and body_timeout judge them.
    awaiting_body_ = true;
    answer_expect_continue();
    return;
  }
  begin_upstream();
}

void Exchange::answer_expect_continue() {
  auto& headers = request_.headers;
  auto expect = std::find_if(headers.begin(), headers.end(),
                             [](const Header& h) { return iequals(h.name, "expect"); });
  if (expect == headers.end() || !iequals(expect->value, "100-continue")) {
    return;
  }
  // The client waits for this before sending the body we wait for; the upstream gets the
  // body without the expectation, as from nginx.
  headers.erase(expect);
  ResponseHead interim;
  interim.status = 100;
  interim.reason = "Continue";
  stream_.send_head(interim);
}

void Exchange::begin_upstream() {
  awaiting_body_ = false;
  if (!choose_server()) {
    log::warn("no upstream server available",
              {{"upstream", group_->settings->name}, {"request_id", request_id_.view()}});
    respond_local(503, "no healthy upstream server");
    return;
  }
  websocket_ = stream_.can_tunnel() && is_websocket_upgrade(request_);
  lease_connection(true);
}

bool Exchange::choose_server() {
  server_ = worker_.pick_server(*snapshot_, group_index_, tried_);
  if (!server_) {
    return false;
  }
  server_->active.fetch_add(1, std::memory_order_relaxed);
  server_->requests.fetch_add(1, std::memory_order_relaxed);
  counted_active_ = true;
  return true;
}

bool Exchange::may_retry() const {
  const config::Upstream& settings = *group_->settings;
  auto elapsed = std::chrono::steady_clock::now() - started_;
  return !body_streamed_ && retries_ < settings.retries && elapsed < settings.retry_timeout;
}

void Exchange::lease_connection(bool allow_pooled) {
  // A connection that may become a tunnel is never taken from (or given back to) the pool.
  if (allow_pooled && !websocket_) {
    upstream_ = worker_.pool().take(*server_);
  }
  if (upstream_) {
    upstream_->begin_request(this, head_request());
    state_ = State::forwarding;
    flush_pending();
    return;
  }
  Listener* self = this;
  upstream_ = std::make_unique<UpstreamConnection>(worker_.loop(), server_, self);
  auto rc = upstream_->connect(group_->settings->connect_timeout);
  if (!rc) {
    error_ = rc.error().message;
    UpstreamConnection::dispose(worker_.loop(), std::move(upstream_));
    respond_local(502, "could not connect to the upstream server");
    return;
  }
  upstream_->begin_request(this, head_request());
  state_ = State::connecting;
}

void Exchange::on_upstream_connected() {
  state_ = State::forwarding;
  flush_pending();
}

void Exchange::flush_pending() {
  evbuffer* out = upstream_->output();
  if (!head_written_) {
    // Built in a per-thread buffer: the head is made again for a retry rather than kept.
    static thread_local std::string head;
    head.clear();
    const ClientInfo& client = stream_.client();
    ForwardContext ctx{client.ip, client.tls ? "https" : "http", request_id_.view(), websocket_};
    build_upstream_request(request_, ctx, &head);
    evbuffer_add(out, head.data(), head.size());
    head_written_ = true;
  }
  body_streamed_ = body_streamed_ || pending_body_;
  pending_body_ = false;
  if (pending_ != nullptr) {
    evbuffer_add_buffer(out, pending_);
  }
  if (request_done_) {
    upstream_->request_sent(group_->settings->response_timeout);
  }
  if (evbuffer_get_length(upstream_->output()) < REQUEST_HIGH_WATERMARK) {
    stream_.pause_request_body(false);
  }
}

evbuffer* Exchange::request_sink() {
  if (state_ == State::forwarding) {
    return upstream_->output();
  }
  if (pending_ == nullptr) {
    pending_ = evbuffer_new();
  }
  return pending_;
}

void Exchange::queue_request_bytes(const char* data, size_t len, bool body) {
  evbuffer* sink = request_sink();
  if (body) {
    bool streamed = sink != pending_;
    body_streamed_ = body_streamed_ || streamed;
    pending_body_ = pending_body_ || !streamed;
  }
  evbuffer_add(sink, data, len);
  if (evbuffer_get_length(sink) >= REQUEST_HIGH_WATERMARK) {
    stream_.pause_request_body(true);
  }
}

void Exchange::on_request_body(const char* data, size_t len) {
  bytes_in_ += len;
  if (state_ == State::done || len == 0) {
    return;
  }
  uint64_t limit = snapshot_->config().limits.max_body_bytes;
  if (limit > 0 && bytes_in_ > limit) {
    if (response_head_sent_) {
      abort("request body larger than the limit");
    } else {
      respond_local(413, "request body larger than the limit");
    }
    return;
  }
  if (request_.chunked) {
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", len);
    queue_request_bytes(size_line, static_cast<size_t>(n), true);
    queue_request_bytes(data, len, true);
    queue_request_bytes("\r\n", 2, true);
  } else {
    queue_request_bytes(data, len, true);
  }
  if (awaiting_body_ && evbuffer_get_length(pending_) >= BODY_BEFORE_CONNECT) {
    begin_upstream();
  }
}

void Exchange::on_request_complete() {
  request_done_ = true;
  if (state_ == State::done) {
    return;
  }
  if (request_.chunked) {
    queue_request_bytes("0\r\n\r\n", 5, true);
  }
  if (awaiting_body_) {
    begin_upstream();
    return;
  }
  if (state_ == State::forwarding) {
    upstream_->request_sent(group_->settings->response_timeout);
  }
}

void Exchange::on_upstream_drained() {
  size_t queued = evbuffer_get_length(upstream_->output());
  if (state_ == State::tunnel && client_closed_) {
    if (queued == 0) {
      finish();
    }
    return;
  }
  if (queued < REQUEST_HIGH_WATERMARK) {
    stream_.pause_request_body(false);
  }
}

void Exchange::on_tunnel_bytes(const char* data, size_t len) {
  bytes_in_ += len;
  if (state_ != State::tunnel || len == 0) {
    return;
  }
  evbuffer_add(upstream_->output(), data, len);
  if (evbuffer_get_length(upstream_->output()) >= REQUEST_HIGH_WATERMARK) {
    stream_.pause_request_body(true);
  }
}

void Exchange::on_tunnel_client_closed() {
  if (state_ != State::tunnel) {
    return;
  }
  client_closed_ = true;
  if (evbuffer_get_length(upstream_->output()) == 0) {
    finish();
  }
}

void Exchange::on_upstream_head(ResponseHead& head) {
  if (head.status == 101 && websocket_ && state_ == State::forwarding) {
    status_ = 101;
    upgraded_ = true;
    response_head_sent_ = true;
    stream_.send_head(head);
    return;
  }
  if (head.status == 101) {
    // Only WebSocket upgrades of HTTP/1.1 clients are tunnelled: any other 101 is refused
    // rather than relayed as a half-working tunnel.
    error_ = "upstream switched protocols";
    return;
  }
  if (head.status >= 200) {
    status_ = head.status;
    response_head_sent_ = true;
    add_hsts(head);
  }
  stream_.send_head(head);
}

// RFC 6797: every response on an HSTS listener carries the policy; an upstream that sets its
// own (say, with includeSubDomains) keeps it.
void Exchange::add_hsts(ResponseHead& head) const {
  int64_t max_age = stream_.client().hsts_max_age;
  if (max_age <= 0 || head.find("strict-transport-security") != nullptr) {
    return;
  }
  head.headers.push_back({"Strict-Transport-Security", "max-age=" + std::to_string(max_age)});
}

void Exchange::on_upstream_body(const char* data, size_t len) {
  if (state_ == State::done) {
    return;
  }
  bytes_out_ += len;
  stream_.send_body(data, len);
  if (!upstream_paused_ && stream_.buffered() >= RESPONSE_HIGH_WATERMARK) {
    upstream_paused_ = true;
    upstream_->pause_reading(true);
  }
}

void Exchange::on_downstream_drained() {
  if (upstream_paused_ && upstream_ && stream_.buffered() < RESPONSE_HIGH_WATERMARK) {
    upstream_paused_ = false;
    upstream_->pause_reading(false);
  }
}

void Exchange::on_upstream_complete() {
  if (upgraded_ && state_ == State::forwarding) {
    // The 101 ended the HTTP part: what follows on either socket belongs to the tunnel.
    state_ = State::tunnel;
    stream_.start_tunnel();
    if (state_ == State::tunnel) {
      upstream_->start_tunnel();
    }
    return;
  }
  if (!response_head_sent_) {
    respond_local(502, "invalid response from the upstream server");
    return;
  }
  stream_.send_end();
  finish();
}

void Exchange::on_upstream_failure(UpstreamFailure failure, const std::string& reason) {
  if (state_ == State::tunnel) {
    // The upstream closing is how a tunnel normally ends: flush to the client, then close.
    if (failure != UpstreamFailure::closed || reason != "peer closed") {
      error_ = reason;
    }
    stream_.reset();
    finish();
    return;
  }
  error_ = reason;
  if (response_head_sent_) {
    log::warn(
        "upstream failed mid-response",
        {{"upstream", server_->address}, {"reason", reason}, {"request_id", request_id_.view()}});
    status_ = status_ == 0 ? 502 : status_;
    stream_.reset();
    finish();
    return;
  }
  // A pooled connection the server closed while we reused it: the request never reached the
  // application, so it goes once more to the same server on a fresh connection.
  bool stale = upstream_ && upstream_->reused() && !upstream_->response_started() &&
               failure == UpstreamFailure::closed;
  if (stale && !stale_retried_ && !body_streamed_ && idempotent(request_.method)) {
    stale_retried_ = true;
    UpstreamConnection::dispose(worker_.loop(), std::move(upstream_));
    head_written_ = false;
    lease_connection(false);
    return;
  }
  // Connect errors, resets and timeouts before any response byte count against the server; a
  // response that does not parse is the server answering badly, not being unreachable.
  bool unreachable = failure != UpstreamFailure::protocol;
  log::warn(
      "upstream attempt failed",
      {{"upstream", server_->address}, {"reason", reason}, {"request_id", request_id_.view()}});
  if (unreachable && server_->record_failure(steady_now_ms(), *group_->settings)) {
    log::warn("upstream server taken out after failures",
              {{"upstream", group_->settings->name},
               {"server", server_->address},
               {"for_ms", group_->settings->fail_timeout.count()}});
  }
  if (unreachable && may_retry()) {
    tried_.push_back(server_.get());
    release_upstream();
    if (choose_server()) {
      ++retries_;
      group_->counters->retries.fetch_add(1, std::memory_order_relaxed);
      head_written_ = false;
      lease_connection(true);
      return;
    }
  }
  if (failure == UpstreamFailure::timeout) {
    respond_local(504, "the upstream server did not answer in time");
  } else {
    respond_local(502, "the upstream server failed");
  }
}

void Exchange::respond_local(int status, const std::string& text) {
  if (state_ == State::done) {
    return;
  }
  status_ = status;
  std::string body = std::to_string(status) + " " + reason_phrase(status) + ": " + text + "\n";
  ResponseHead head;
  head.status = status;
  head.reason = reason_phrase(status);
  head.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
  head.headers.push_back({"Content-Length", std::to_string(body.size())});
  if (!request_id_.empty()) {
    head.headers.push_back({"X-Request-Id", std::string(request_id_.view())});
  }
  if (status == 503) {
    head.headers.push_back({"Retry-After", "1"});
  }
  add_hsts(head);
  head.content_length = static_cast<int64_t>(body.size());
  response_head_sent_ = true;
  stream_.send_head(head);
  bytes_out_ += body.size();
  stream_.send_body(body.data(), body.size());
  stream_.send_end();
  finish();
}

bool Exchange::rebase(const std::shared_ptr<const RuntimeSnapshot>& snapshot) {
  if (group_ == nullptr || state_ == State::done) {
    snapshot_ = snapshot;
    return true;
  }
  auto index = snapshot->find_group(group_->settings->name);
  if (!index) {
    return false;
  }
  snapshot_ = snapshot;
  group_index_ = *index;
  group_ = &snapshot_->group(group_index_);
  return true;
}

void Exchange::abort(const std::string& reason) {
  if (state_ == State::done) {
    return;
  }
  error_ = reason;
  if (status_ == 0) {
    status_ = 499;  // nginx's code for "client closed the request"
  }
  finish();
}

void Exchange::reject_request(int status, const std::string& reason) {
  if (state_ == State::done) {
    return;
  }
  if (response_head_sent_) {
    abort(reason);
    return;
  }
  error_ = reason;
  respond_local(status, reason);
}

void Exchange::release_upstream() {
  if (counted_active_) {
    server_->active.fetch_sub(1, std::memory_order_relaxed);
    counted_active_ = false;
  }
  if (!upstream_) {
    return;
  }
  if (!websocket_ && upstream_->reusable() && request_done_ && state_ != State::done) {
    worker_.pool().put(std::move(upstream_), group_->settings->max_idle_connections,
                       group_->settings->idle_timeout);
  } else {
    UpstreamConnection::dispose(worker_.loop(), std::move(upstream_));
  }
}

void Exchange::finish() {
  release_upstream();
  state_ = State::done;
  ProxyStats& stats = worker_.stats();
  if (server_) {
    server_->responses.add(status_);
  } else if (group_ != nullptr) {
    group_->counters->unserved.add(status_);
  } else {
    stats.unrouted.add(status_);
  }
  stats.request_duration.observe(std::chrono::steady_clock::now() - started_);
  write_access_log();
  stream_.on_exchange_done();
}

void Exchange::write_access_log() {
  if (!snapshot_->config().log.access) {
    return;
  }
  AccessRecord r;
  r.client = stream_.client().ip;
  r.method = request_.method;
  r.host = request_host(request_);
  r.path = request_.target;
  r.status = status_;
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
          .count();
  r.upstream = server_ ? std::string_view(server_->address) : std::string_view();
  r.request_id = request_id_.view();
  r.error = error_;
  write_access_line(r);
}

}  // namespace fd::proxy
