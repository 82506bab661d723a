#include "proxy/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <string_view>

#include "common/log.h"
#include "proxy/block_cache.h"

namespace fd::proxy {
namespace {

// CVE-2023-44487 (rapid reset): at most this many RST_STREAM frames from the client in a burst,
// refilled at RESET_RATE per second, then GOAWAY ENHANCE_YOUR_CALM (the values nghttp2 uses).
// We count them ourselves because nghttp2's own limiter answers with INTERNAL_ERROR; it stays
// on, set looser, as a backstop.
constexpr double RESET_BURST = 1000;
constexpr double RESET_RATE = 33;
constexpr uint64_t NGHTTP2_RESET_BURST = 2000;
constexpr uint64_t NGHTTP2_RESET_RATE = 100;
// CVE-2024-27316 (CONTINUATION flood): CONTINUATION frames allowed after one HEADERS frame.
constexpr size_t MAX_CONTINUATIONS = 8;

std::string_view view(const uint8_t* p, size_t len) {
  return {reinterpret_cast<const char*>(p), len};
}

}  // namespace

// nghttp2's C callbacks, as static members of a friend so they may reach the session's state.
struct Http2Callbacks {
  static Http2Session& self(void* user_data) { return *static_cast<Http2Session*>(user_data); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    Http2Session& s = self(user_data);
    s.add(std::make_unique<Http2Stream>(s, frame->hd.stream_id));
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                       void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;  // trailers are not forwarded (the upstream body is chunked without them)
    }
    Http2Stream* stream = self(user_data).find(frame->hd.stream_id);
    if (stream == nullptr) {
      return 0;
    }
    return stream->on_header(view(name, namelen), view(value, valuelen));
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Http2Session& s = self(user_data);
    if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
      s.settings_timer_.cancel();
      return 0;
    }
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
      s.on_client_reset();
      return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
      return 0;
    }
    Http2Stream* stream = s.find(frame->hd.stream_id);
    if (stream == nullptr) {
      return 0;
    }
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      if (stream->on_head_complete(end_stream)) {
        s.handler_.on_stream_request(*stream);
      }
    }
    // The handler may have answered already, but the stream object stays until nghttp2
    // closes it, so it is still valid here.
    if (end_stream) {
      stream->on_request_end();
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                           const uint8_t* data, size_t len, void* user_data) {
    // The connection window is acknowledged at once: memory is bounded by the stream windows,
    // and one slow upstream must not stall the other streams of the connection.
    nghttp2_session_consume_connection(session, len);
    Http2Stream* stream = self(user_data).find(stream_id);
    if (stream == nullptr) {
      return 0;
    }
    stream->on_data(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      if (Http2Stream* stream = self(user_data).find(frame->hd.stream_id)) {
        stream->on_end_stream_sent();
      }
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                             void* user_data) {
    Http2Session& s = self(user_data);
    if (Http2Stream* stream = s.find(stream_id)) {
      stream->on_closed(error_code);
      s.release(*stream);
    }
    return 0;
  }

  static int on_error(nghttp2_session*, int lib_error_code, const char* msg, size_t len,
                      void* user_data) {
    if (log::enabled(log::Level::debug)) {
      log::debug("http2 protocol error", {{"client", self(user_data).client_.ip},
                                          {"code", lib_error_code},
                                          {"reason", std::string(msg, len)}});
    }
    return 0;
  }
};

Http2Session::Http2Session(EventLoop& loop, evbuffer* out, Handler& handler, ClientInfo client,
                           const Settings& settings)
    : loop_(loop),
      out_(out),
      handler_(handler),
      client_(std::move(client)),
      settings_(settings),
      settings_timer_(loop, [this] { on_settings_timeout(); }) {}

Http2Session::~Http2Session() {
  if (send_event_ != nullptr) {
    event_free(send_event_);
  }
  // nghttp2_session_del runs no callbacks; the streams (and their exchanges) go after it.
  nghttp2_session_del(session_);
}

Result<std::unique_ptr<Http2Session>> Http2Session::create(EventLoop& loop, evbuffer* out,
                                                           Handler& handler, ClientInfo client,
                                                           const Settings& settings) {
  std::unique_ptr<Http2Session> s(
      new Http2Session(loop, out, handler, std::move(client), settings));
  s->send_event_ = event_new(loop.base(), -1, 0, &Http2Session::on_send_event, s.get());
  if (s->send_event_ == nullptr) {
    return make_error(Errc::internal, "event_new failed");
  }
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    return make_error(Errc::internal, "nghttp2_session_callbacks_new failed");
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Http2Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Http2Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Http2Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Http2Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Http2Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Http2Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(cbs, &Http2Callbacks::on_error);

  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return make_error(Errc::internal, "nghttp2_option_new failed");
  }
  // Window updates are ours: a stream's window reopens only as its upstream takes the bytes.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_stream_reset_rate_limit(opt, NGHTTP2_RESET_BURST, NGHTTP2_RESET_RATE);
  nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
  int rv = nghttp2_session_server_new3(&s->session_, cbs, s.get(), opt,
                                       block_cache::nghttp2_allocator());
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    return make_error(Errc::internal,
                      std::string("nghttp2_session_server_new3: ") + nghttp2_strerror(rv));
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(settings.stream_window)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_list_size},
      // RFC 9218 priorities; the RFC 7540 tree is deprecated (RFC 9113 §5.3) and costs
      // nghttp2 a tree of closed streams kept for it.
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  rv = nghttp2_submit_settings(s->session_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  if (rv == 0) {
    rv = nghttp2_session_set_local_window_size(s->session_, NGHTTP2_FLAG_NONE, 0,
                                               settings.connection_window);
  }
  if (rv != 0) {
    return make_error(Errc::internal, std::string("nghttp2 settings: ") + nghttp2_strerror(rv));
  }
  s->settings_timer_.arm(settings.settings_timeout);
  return s;
}

Http2Stream* Http2Session::find(int32_t stream_id) const {
  return static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

void Http2Session::add(std::unique_ptr<Http2Stream> stream) {
  nghttp2_session_set_stream_user_data(session_, stream->id(), stream.get());
  stream->slot_ = streams_.size();
  streams_.push_back(std::move(stream));
}

void Http2Session::release(Http2Stream& stream) {
  nghttp2_session_set_stream_user_data(session_, stream.id(), nullptr);
  size_t slot = stream.slot_;
  std::unique_ptr<Deferrable> dead = std::move(streams_[slot]);
  if (slot + 1 != streams_.size()) {
    streams_[slot] = std::move(streams_.back());
    streams_[slot]->slot_ = slot;
  }
  streams_.pop_back();
  loop_.defer_delete(std::move(dead));
}

std::vector<Http2Stream*> Http2Session::streams() const {
  std::vector<Http2Stream*> out;
  out.reserve(streams_.size());
  for (const auto& stream : streams_) {
    out.push_back(stream.get());
  }
  return out;
}

bool Http2Session::receive(evbuffer* in) {
  if (failed_) {
    evbuffer_drain(in, evbuffer_get_length(in));
    return false;
  }
  in_nghttp2_ = true;
  bool ok = true;
  while (evbuffer_get_length(in) > 0) {
    evbuffer_iovec seg;
    if (evbuffer_peek(in, -1, nullptr, &seg, 1) < 1) {
      break;
    }
    ssize_t n =
        nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(seg.iov_base), seg.iov_len);
    if (n < 0) {
      log::info("http2 connection error",
                {{"client", client_.ip}, {"reason", nghttp2_strerror(static_cast<int>(n))}});
      evbuffer_drain(in, evbuffer_get_length(in));
      ok = false;
      break;
    }
    evbuffer_drain(in, static_cast<size_t>(n));
  }
  in_nghttp2_ = false;
  if (!ok && nghttp2_session_want_write(session_) == 0) {
    failed_ = true;  // nothing queued for the client (a bad preface): just close
  }
  send_due_ = true;
  send();
  if (!ok) {
    failed_ = true;
  }
  return ok;
}

bool Http2Session::write_frames() {
  while (evbuffer_get_length(out_) < OUTPUT_HIGH_WATERMARK) {
    const uint8_t* data = nullptr;
    in_nghttp2_ = true;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    in_nghttp2_ = false;
    if (n < 0) {
      log::warn("http2 send failed",
                {{"client", client_.ip}, {"reason", nghttp2_strerror(static_cast<int>(n))}});
      return false;
    }
    if (n == 0) {
      break;
    }
    evbuffer_add(out_, data, static_cast<size_t>(n));
  }
  return true;
}

void Http2Session::send() {
  if (in_nghttp2_ || in_send_) {
    send_due_ = true;
    return;
  }
  if (failed_) {
    return;
  }
  in_send_ = true;
  do {
    send_due_ = false;
    if (!write_frames()) {
      failed_ = true;
      break;
    }
    // Streams that handed out bytes may let their upstream resume; that can queue more
    // response bytes (another pass) or finish exchanges.
    std::vector<int32_t> drained;
    drained.swap(drained_);
    for (int32_t id : drained) {
      if (Http2Stream* stream = find(id)) {
        stream->notify_drained();
      }
    }
  } while (send_due_ && evbuffer_get_length(out_) < OUTPUT_HIGH_WATERMARK);
  in_send_ = false;
  handler_.on_session_activity();
}

void Http2Session::on_client_reset() {
  auto now = std::chrono::steady_clock::now();
  if (reset_tokens_ < 0) {
    reset_tokens_ = RESET_BURST;
  } else {
    std::chrono::duration<double> elapsed = now - reset_refill_;
    reset_tokens_ = std::min(RESET_BURST, reset_tokens_ + elapsed.count() * RESET_RATE);
  }
  reset_refill_ = now;
  if (reset_tokens_ >= 1) {
    reset_tokens_ -= 1;
    return;
  }
  if (!calm_sent_) {
    calm_sent_ = true;
    log::warn("http2 client resets streams too fast: closing", {{"client", client_.ip}});
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

void Http2Session::schedule_send() {
  if (in_nghttp2_ || in_send_) {
    send_due_ = true;
    return;
  }
  if (!failed_ && !event_pending(send_event_, EV_TIMEOUT, nullptr)) {
    event_active(send_event_, EV_TIMEOUT, 0);
  }
}

void Http2Session::on_send_event(evutil_socket_t, short, void* arg) {
  static_cast<Http2Session*>(arg)->send();
}

void Http2Session::drain() {
  if (failed_) {
    return;
  }
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  send();
}

void Http2Session::on_settings_timeout() {
  // RFC 9113 §6.5.3: a peer that never acknowledges our SETTINGS may be ignoring the limits
  // they announce (concurrent streams, header list size).
  log::info("http2 client did not acknowledge SETTINGS: closing", {{"client", client_.ip}});
  terminate(NGHTTP2_SETTINGS_TIMEOUT);
}

void Http2Session::terminate(uint32_t error_code) {
  if (failed_) {
    return;
  }
  nghttp2_session_terminate_session(session_, error_code);
  send();
}

bool Http2Session::finished() const {
  if (failed_) {
    return true;
  }
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

void Http2Session::abort_all(const std::string& why) {
  failed_ = true;  // the connection is closing: nothing more goes out
  for (Http2Stream* stream : streams()) {
    if (Exchange* exchange = stream->exchange()) {
      exchange->abort(why);
    }
  }
}

}  // namespace fd::proxy
