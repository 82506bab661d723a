#include "proxy/upstream_connection.h"

namespace fd::proxy {
namespace {

// Responses have no head size limit of the client's kind, but a server sending megabytes of
// headers is broken: cap them generously.
constexpr uint32_t MAX_RESPONSE_HEAD = 256 * 1024;
// Keep at most this much unparsed response data; reading resumes as the parser drains it.
constexpr size_t MAX_RESPONSE_INPUT = 256 * 1024;
constexpr size_t WRITE_LOW_WATERMARK = 64 * 1024;

}  // namespace

UpstreamConnection::UpstreamConnection(EventLoop& loop, std::shared_ptr<UpstreamServer> server,
                                       Listener* listener)
    : loop_(loop),
      server_(std::move(server)),
      listener_(listener),
      parser_(Http1Parser::Kind::response, this, MAX_RESPONSE_HEAD) {}

UpstreamConnection::~UpstreamConnection() = default;

void UpstreamConnection::dispose(EventLoop& loop, std::unique_ptr<UpstreamConnection> conn) {
  conn->failed_ = true;
  conn->reusable_ = false;
  if (conn->transport_) {
    conn->transport_->close();
  }
  loop.defer_delete(std::move(conn));
}

Result<void> UpstreamConnection::connect(std::chrono::milliseconds timeout) {
  auto t = Transport::connect_tcp(loop_, reinterpret_cast<const sockaddr*>(&server_->addr),
                                  server_->addr_len, this);
  if (!t) {
    return t.error();
  }
  transport_ = std::move(*t);
  transport_->set_watermarks(MAX_RESPONSE_INPUT, WRITE_LOW_WATERMARK);
  // libevent reports a connect that takes too long as a write timeout.
  transport_->set_timeouts(std::chrono::milliseconds(0), timeout);
  return {};
}

void UpstreamConnection::begin_request(Listener* listener, bool head_request) {
  listener_ = listener;
  head_request_ = head_request;
  in_request_ = true;
  response_started_ = false;
  message_done_ = false;
  reusable_ = false;
  paused_ = false;
  if (connected_) {
    transport_->set_timeouts(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
    transport_->enable_read(true);
  }
}

void UpstreamConnection::request_sent(std::chrono::milliseconds timeout) {
  if (transport_ && !failed_) {
    transport_->set_timeouts(timeout, timeout);
  }
}

void UpstreamConnection::pause_reading(bool paused) {
  if (paused_ == paused || failed_) {
    return;
  }
  paused_ = paused;
  transport_->enable_read(!paused);
  if (!paused) {
    process_input();
  }
}

void UpstreamConnection::start_tunnel() {
  if (failed_) {
    return;
  }
  tunnel_ = true;
  in_request_ = false;
  reusable_ = false;
  transport_->set_timeouts(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
  transport_->enable_read(!paused_);
  relay_tunnel();
}

void UpstreamConnection::relay_tunnel() {
  // Everything already read is handed on even while paused: reading stops at the socket, and
  // input() is bounded by the read watermark, so nothing is lost when EOF follows the data.
  evbuffer* in = transport_->input();
  while (!failed_ && evbuffer_get_length(in) > 0) {
    evbuffer_iovec seg;
    if (evbuffer_peek(in, -1, nullptr, &seg, 1) < 1) {
      break;
    }
    listener_->on_upstream_body(static_cast<const char*>(seg.iov_base), seg.iov_len);
    evbuffer_drain(in, seg.iov_len);
  }
}

void UpstreamConnection::park(Listener* listener, std::chrono::milliseconds idle_timeout) {
  listener_ = listener;
  in_request_ = false;
  paused_ = false;
  parser_.next_message();
  transport_->set_timeouts(idle_timeout, std::chrono::milliseconds(0));
  transport_->enable_read(true);
}

void UpstreamConnection::on_connected() {
  connected_ = true;
  transport_->set_timeouts(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
  listener_->on_upstream_connected();
}

void UpstreamConnection::on_drained() {
  if (in_request_ || tunnel_) {
    listener_->on_upstream_drained();
  }
}

void UpstreamConnection::on_readable() {
  if (tunnel_) {
    relay_tunnel();
    return;
  }
  if (!in_request_) {
    // An idle connection has nothing to say; bytes here mean it cannot be trusted any more.
    fail(UpstreamFailure::protocol, "unexpected data on idle connection");
    return;
  }
  process_input();
}

void UpstreamConnection::process_input() {
  if (tunnel_) {
    relay_tunnel();
    return;
  }
  evbuffer* in = transport_->input();
  while (!failed_ && !paused_ && !message_done_ && evbuffer_get_length(in) > 0) {
    evbuffer_iovec seg;
    if (evbuffer_peek(in, -1, nullptr, &seg, 1) < 1) {
      break;
    }
    response_started_ = true;
    auto out = parser_.execute(static_cast<const char*>(seg.iov_base), seg.iov_len);
    evbuffer_drain(in, out.consumed);
    if (out.status == Http1Parser::Status::error) {
      fail(UpstreamFailure::protocol, "invalid response: " + out.reason);
      return;
    }
    if (out.status != Http1Parser::Status::message_done) {
      continue;
    }
    int status = parser_.response().status;
    if (status >= 100 && status < 200 && status != 101) {
      parser_.next_message();
      continue;
    }
    message_done_ = true;
  }
  if (message_done_ && in_request_ && !failed_) {
    in_request_ = false;
    ++exchanges_;
    reusable_ = parser_.response().keep_alive && evbuffer_get_length(in) == 0;
    transport_->set_timeouts(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
    // The listener may hand this connection to the pool (or drop it) inside the call.
    listener_->on_upstream_complete();
  }
}

bool UpstreamConnection::on_head() {
  ResponseHead& head = parser_.response();
  listener_->on_upstream_head(head);
  return head_request_;
}

void UpstreamConnection::on_body(const char* data, size_t len) {
  listener_->on_upstream_body(data, len);
}

void UpstreamConnection::on_message_complete() {}

void UpstreamConnection::on_closed(bool eof, bool timeout, const std::string& reason) {
  if (tunnel_) {
    relay_tunnel();
    fail(UpstreamFailure::closed, reason);
    return;
  }
  if (eof && in_request_ && parser_.head_complete() && parser_.needs_eof()) {
    // A body delimited by the connection's end: EOF completes it.
    if (parser_.finish()) {
      in_request_ = false;
      ++exchanges_;
      reusable_ = false;
      failed_ = true;
      listener_->on_upstream_complete();
      return;
    }
  }
  if (!connected_) {
    fail(timeout ? UpstreamFailure::timeout : UpstreamFailure::connect,
         timeout ? "connect timeout" : reason);
    return;
  }
  fail(timeout ? UpstreamFailure::timeout : UpstreamFailure::closed, reason);
}

void UpstreamConnection::fail(UpstreamFailure failure, const std::string& reason) {
  if (failed_) {
    return;
  }
  failed_ = true;
  reusable_ = false;
  transport_->close();
  listener_->on_upstream_failure(failure, reason);
}

}  // namespace fd::proxy
