#pragma once

#include <event2/buffer.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "proxy/downstream_stream.h"
#include "proxy/event_loop.h"
#include "proxy/http2_stream.h"

struct nghttp2_session;

namespace fd::proxy {

// The HTTP/2 server side of one client connection, over nghttp2's callback API. It does no I/O:
// the connection feeds it received bytes (receive) and it writes frames into the output
// evbuffer it was given (send), stopping while that buffer holds OUTPUT_HIGH_WATERMARK bytes so
// that response data waits in the streams (and their upstreams pause) instead of piling up.
// Owns the nghttp2_session and the open streams. Worker thread only.
//
// nghttp2 callbacks run inside receive() and send(); nothing is destroyed there: closed streams
// go to EventLoop::defer_delete, and a send() requested from inside a callback is run when the
// outermost call returns.
class Http2Session {
 public:
  // What the owning connection hears.
  class Handler {
   public:
    virtual ~Handler() = default;
    // |stream|'s request head is complete and valid (stream.take_request()). The handler serves it,
    // usually by stream.attach(an Exchange). Called inside receive().
    virtual void on_stream_request(Http2Stream& stream) = 0;
    // Called after each outermost receive() or send(): the connection re-checks finished()
    // and open_streams() for its idle timer. Must not destroy the session synchronously.
    virtual void on_session_activity() = 0;
  };

  struct Settings {
    uint32_t max_concurrent_streams = 100;
    uint32_t max_header_list_size = 65536;  // SETTINGS_MAX_HEADER_LIST_SIZE, enforced per stream
    int32_t stream_window = 256 * 1024;     // request bytes a stream may have unacknowledged
    int32_t connection_window = 16 * 1024 * 1024;
    // Our SETTINGS must be acknowledged within this, else GOAWAY SETTINGS_TIMEOUT (nghttpx
    // waits 10 s too).
    std::chrono::milliseconds settings_timeout{10000};
  };

  // Response bytes in |out| above which send() stops pulling from streams.
  static constexpr size_t OUTPUT_HIGH_WATERMARK = 128 * 1024;

  // A session writing into |out| (not owned), reporting to |handler|, whose closed streams are
  // destroyed through |loop|; |client| is copied for the streams. Queues the server SETTINGS.
  static Result<std::unique_ptr<Http2Session>> create(EventLoop& loop, evbuffer* out,
                                                      Handler& handler, ClientInfo client,
                                                      const Settings& settings);
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Feeds all of |in| to nghttp2 (drained from |in|) and then sends what became due. False on
  // a connection error: what nghttp2 queued (GOAWAY) was written; the caller closes after
  // flushing.
  bool receive(evbuffer* in);
  // Writes due frames into the output while it is below OUTPUT_HIGH_WATERMARK. Streams and
  // exchanges may close (and exchanges abort) inside, so callers must not have an Exchange on
  // the stack: they use schedule_send(). Inside a callback it only notes that a send is due.
  void send();
  // Runs send() from a fresh loop callback (or from the send pass now running). What the
  // streams use: an Exchange calling into its stream must never see itself aborted by a
  // stream close that the write caused.
  void schedule_send();
  // Graceful drain: GOAWAY(NO_ERROR) naming the last stream we began processing; open streams
  // finish, new ones are refused; finished() becomes true when the last one closed.
  void drain();
  // GOAWAY with |error_code|, no more streams; finished() once the frame is written.
  void terminate(uint32_t error_code);
  // Nothing more to read or write: close the connection once the output is flushed.
  bool finished() const;
  size_t open_streams() const { return streams_.size(); }
  // The open streams (for reload: rebasing or cutting their exchanges).
  std::vector<Http2Stream*> streams() const;
  // The connection is going away: aborts every running exchange with |why|.
  void abort_all(const std::string& why);

  // For the streams.
  nghttp2_session* raw() const { return session_; }
  EventLoop& loop() const { return loop_; }
  const ClientInfo& client() const { return client_; }
  uint32_t max_header_list_size() const { return settings_.max_header_list_size; }
  // |stream| handed out response bytes; notify it after the current send pass.
  void note_drained(int32_t stream_id) { drained_.push_back(stream_id); }

 private:
  friend struct Http2Callbacks;

  Http2Session(EventLoop& loop, evbuffer* out, Handler& handler, ClientInfo client,
               const Settings& settings);
  static void on_send_event(evutil_socket_t, short, void* arg);
  // A RST_STREAM from the client: spends a token of the rapid-reset budget; when none is left,
  // GOAWAY ENHANCE_YOUR_CALM ends the connection (CVE-2023-44487).
  void on_client_reset();
  void on_settings_timeout();
  // The open stream |stream_id|, through nghttp2's stream user data; nullptr once released.
  Http2Stream* find(int32_t stream_id) const;
  // Makes |stream| an open stream, found by its id from nghttp2's callbacks.
  void add(std::unique_ptr<Http2Stream> stream);
  // Takes |stream| out of the open streams and defer-deletes it.
  void release(Http2Stream& stream);
  // One pass of nghttp2_session_mem_send into |out_|; false on a fatal error.
  bool write_frames();

  EventLoop& loop_;
  evbuffer* out_;
  Handler& handler_;
  ClientInfo client_;
  Settings settings_;
  nghttp2_session* session_ = nullptr;
  // The open streams, in no order; each stream knows its index here (Http2Stream::slot_), so
  // that release is a swap with the last.
  std::vector<std::unique_ptr<Http2Stream>> streams_;
  std::vector<int32_t> drained_;
  bool in_nghttp2_ = false;  // inside mem_recv or mem_send: callbacks are on the stack
  bool in_send_ = false;     // inside send(): nested calls only ask for another pass
  bool send_due_ = false;
  bool failed_ = false;          // a fatal error: no more calls into nghttp2 but flushing
  event* send_event_ = nullptr;  // schedule_send(); freed first in the destructor
  double reset_tokens_ = -1;     // rapid-reset budget; -1 until the first reset
  std::chrono::steady_clock::time_point reset_refill_;
  bool calm_sent_ = false;
  // Declared last: destroyed first, so its callback never sees a half-destroyed session.
  Timer settings_timer_;
};

}  // namespace fd::proxy
