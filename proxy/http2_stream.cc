#include "proxy/http2_stream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>

#include "common/log.h"
#include "proxy/header_rewrite.h"
#include "proxy/http2_session.h"

namespace fd::proxy {
namespace {

// Above this many queued response bytes buffered() makes the Exchange pause its upstream; a
// pull that leaves fewer tells it to resume. Matches the Exchange's own watermark.
constexpr size_t RESPONSE_LOW_WATERMARK = 256 * 1024;

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

ssize_t read_callback(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* data_flags,
                      nghttp2_data_source* source, void*) {
  return static_cast<Http2Stream*>(source->ptr)->read_body(buf, length, data_flags);
}

}  // namespace

Http2Stream::Http2Stream(Http2Session& session, int32_t id)
    : session_(session), id_(id), body_(evbuffer_new()) {
  request_.version_major = 2;
  request_.version_minor = 0;
  request_.headers.reserve(16);  // as Http1Parser: no regrowth for a usual request
}

Http2Stream::~Http2Stream() {
  evbuffer_free(body_);
}

const ClientInfo& Http2Stream::client() const {
  return session_.client();
}

int Http2Stream::on_header(std::string_view name, std::string_view value) {
  // RFC 9113 §6.5.2: the size of a field is its name and value plus 32 octets.
  header_bytes_ += name.size() + value.size() + 32;
  if (header_bytes_ > session_.max_header_list_size()) {
    header_too_large_ = true;
  }
  if (header_too_large_) {
    return 0;  // keep decoding (HPACK state is shared) but keep nothing
  }
  // nghttp2's HTTP messaging checks have already refused connection-specific fields, bad
  // pseudo-headers and uppercase names with a stream error PROTOCOL_ERROR.
  if (name == ":method") {
    request_.method = value;
  } else if (name == ":path") {
    request_.target = value;
  } else if (name == ":authority") {
    authority_ = value;
  } else if (!name.empty() && name.front() == ':') {
    // :scheme (and :protocol) say nothing the upstream request needs.
  } else if (name == "cookie") {
    // RFC 9113 §8.2.3: crumbs are joined again for an HTTP/1.1 peer.
    if (!cookie_.empty()) {
      cookie_ += "; ";
    }
    cookie_ += value;
  } else {
    if (name == "content-length") {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec == std::errc() && end == value.data() + value.size()) {
        request_.content_length = n;
      }
    }
    request_.headers.push_back({std::string(name), std::string(value)});
  }
  return 0;
}

bool Http2Stream::on_head_complete(bool end_stream) {
  head_request_ = request_.method == "HEAD";
  if (header_too_large_) {
    log::info("bad request", {{"client", client().ip},
                              {"status", 431},
                              {"reason", "http2 header list larger than the limit"}});
    respond_local(431, "request header fields too large");
    return false;
  }
  if (request_.method == "CONNECT") {
    respond_local(501, "CONNECT is not supported");
    return false;
  }
  // RFC 9113 §8.3.1: :authority stands for Host, and wins over a Host field if both came.
  if (!authority_.empty()) {
    std::erase_if(request_.headers, [](const Header& h) { return h.name == "host"; });
    request_.headers.insert(request_.headers.begin(), Header{"host", authority_});
  }
  if (!cookie_.empty()) {
    request_.headers.push_back({"cookie", cookie_});
  }
  // A body without a declared length goes upstream chunked.
  request_.chunked = !end_stream && request_.content_length < 0;
  request_.keep_alive = true;
  request_done_ = end_stream;
  return true;
}

void Http2Stream::attach(std::unique_ptr<Exchange> exchange) {
  exchange_ = std::move(exchange);
  exchange_done_ = false;
  Exchange* x = exchange_.get();
  x->start();  // may finish (and defer-delete) the exchange at once
}

void Http2Stream::on_data(const char* data, size_t len) {
  body_pace_.on_bytes(len);
  if (exchange_ && !exchange_done_) {
    exchange_->on_request_body(data, len);
  }
  if (paused_ && !exchange_done_) {
    unconsumed_ += len;  // acknowledged when the exchange resumes
    return;
  }
  consume(len);
}

void Http2Stream::on_request_end() {
  request_done_ = true;
  if (exchange_ && !exchange_done_) {
    exchange_->on_request_complete();
  }
}

void Http2Stream::consume(size_t len) {
  if (len == 0 || closed_) {
    return;
  }
  nghttp2_session_consume_stream(session_.raw(), id_, len);
}

void Http2Stream::pause_request_body(bool paused) {
  if (paused_ == paused) {
    return;
  }
  paused_ = paused;
  if (!paused && unconsumed_ > 0) {
    size_t n = unconsumed_;
    unconsumed_ = 0;
    consume(n);
    session_.schedule_send();
  }
}

void Http2Stream::on_closed(uint32_t error_code) {
  closed_ = true;
  if (exchange_ && !exchange_done_) {
    exchange_->abort(error_code == NGHTTP2_NO_ERROR ? "client closed the stream"
                                                    : std::string("client reset the stream: ") +
                                                          nghttp2_http2_strerror(error_code));
  }
}

void Http2Stream::on_end_stream_sent() {
  // RFC 9113 §8.1: a complete response may end a request we did not read to the end.
  if (!request_done_ && !reset_sent_ && !closed_) {
    reset_sent_ = true;
    nghttp2_submit_rst_stream(session_.raw(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
}

void Http2Stream::cut(const std::string& why) {
  if (!closed_ && !reset_sent_) {
    reset_sent_ = true;
    nghttp2_submit_rst_stream(session_.raw(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  }
  if (exchange_ && !exchange_done_) {
    exchange_->abort(why);
  }
  session_.schedule_send();
}

void Http2Stream::send_head(const ResponseHead& head) {
  if (closed_ || reset_sent_ || response_started_) {
    return;
  }
  if (head.status < 200 && head.status != 100 && head.status != 103) {
    return;  // 101 and other interim responses have no HTTP/2 equivalent here
  }
  // nghttp2 copies the fields it is handed, so the lowercased names and the field list live
  // in buffers this thread reuses rather than in allocations per response.
  static thread_local std::string names;
  static thread_local std::vector<nghttp2_nv> nva;
  size_t name_bytes = 0;
  for (const auto& h : head.headers) {
    name_bytes += h.name.size();
  }
  names.clear();
  names.reserve(name_bytes);  // no growth below, so views into it stay valid
  nva.clear();
  char status[8];
  auto [end, ec] = std::to_chars(status, status + sizeof status, head.status);
  nva.push_back(make_nv(":status", std::string_view(status, static_cast<size_t>(end - status))));
  BodyFraming framing = response_framing(head, head_request_, false);
  HopByHop hop_by_hop(head.headers);
  for (const auto& h : head.headers) {
    size_t at = names.size();
    for (char c : h.name) {
      names.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    }
    std::string_view name(names.data() + at, h.name.size());
    if (name.empty() || name.front() == ':' || hop_by_hop.contains(name) ||
        (name == "content-length" && framing == BodyFraming::chunked)) {
      names.resize(at);
      continue;
    }
    nva.push_back(make_nv(name, h.value));
  }
  int rv = 0;
  if (head.status < 200) {
    rv = nghttp2_submit_headers(session_.raw(), NGHTTP2_FLAG_NONE, id_, nullptr, nva.data(),
                                nva.size(), nullptr);
  } else {
    response_started_ = true;
    response_no_body_ = framing == BodyFraming::none;
    if (response_no_body_) {
      rv = nghttp2_submit_response(session_.raw(), id_, nva.data(), nva.size(), nullptr);
    } else {
      nghttp2_data_provider provider{};
      provider.source.ptr = this;
      provider.read_callback = &read_callback;
      rv = nghttp2_submit_response(session_.raw(), id_, nva.data(), nva.size(), &provider);
    }
  }
  if (rv != 0) {
    log::warn("http2 response head refused",
              {{"client", client().ip}, {"reason", nghttp2_strerror(rv)}});
  }
  session_.schedule_send();
}

void Http2Stream::send_body(const char* data, size_t len) {
  if (closed_ || reset_sent_ || response_no_body_ || len == 0) {
    return;
  }
  evbuffer_add(body_, data, len);
  resume();
}

void Http2Stream::send_end() {
  if (body_end_) {
    return;
  }
  body_end_ = true;
  if (closed_ || reset_sent_ || response_no_body_) {
    return;
  }
  resume();
}

void Http2Stream::resume() {
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(session_.raw(), id_);
  }
  session_.schedule_send();
}

ssize_t Http2Stream::read_body(uint8_t* buf, size_t len, uint32_t* data_flags) {
  size_t have = evbuffer_get_length(body_);
  if (have == 0 && !body_end_) {
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(len, have);
  if (n > 0) {
    evbuffer_remove(body_, buf, n);
  }
  if (body_end_ && evbuffer_get_length(body_) == 0) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  if (exchange_ && !exchange_done_ && have >= RESPONSE_LOW_WATERMARK &&
      have - n < RESPONSE_LOW_WATERMARK) {
    session_.note_drained(id_);
  }
  return static_cast<ssize_t>(n);
}

void Http2Stream::notify_drained() {
  if (exchange_ && !exchange_done_) {
    exchange_->on_downstream_drained();
  }
}

size_t Http2Stream::buffered() const {
  return evbuffer_get_length(body_);
}

void Http2Stream::reset() {
  if (closed_ || reset_sent_) {
    return;
  }
  reset_sent_ = true;
  nghttp2_submit_rst_stream(session_.raw(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  session_.schedule_send();
}

void Http2Stream::on_exchange_done() {
  exchange_done_ = true;
  if (exchange_) {
    session_.loop().defer_delete(std::move(exchange_));
  }
  // Bytes held back while paused: the exchange takes no more, so let the client finish.
  if (unconsumed_ > 0) {
    size_t n = unconsumed_;
    unconsumed_ = 0;
    consume(n);
  }
  paused_ = false;
  session_.schedule_send();
}

void Http2Stream::respond_local(int status, const std::string& text) {
  std::string body = std::to_string(status) + " " + reason_phrase(status) + ": " + text + "\n";
  ResponseHead head;
  head.status = status;
  head.reason = reason_phrase(status);
  head.headers.push_back({"content-type", "text/plain; charset=utf-8"});
  head.headers.push_back({"content-length", std::to_string(body.size())});
  head.content_length = static_cast<int64_t>(body.size());
  send_head(head);
  send_body(body.data(), body.size());
  send_end();
}

}  // namespace fd::proxy
