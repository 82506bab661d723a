#pragma once

#include <event2/buffer.h>
#include <event2/event.h>

#include <chrono>
#include <string>

#include "proxy/event_loop.h"
#include "proxy/transport.h"

namespace fd::proxy {

// What plain TCP and TLS share: a socket on raw libevent events, with evbuffers for input and
// output. Unlike a bufferevent it keeps the read event registered with epoll while reading is
// wanted, and writes in a callback activated on the loop (no epoll_ctl) once the current
// callbacks are done, so a request and its answer cost no epoll_ctl unless a socket is full:
// the write event is registered only while output waits for room. Upstream connections may
// write later still, when their loop is busy (deferred_writes.h). Subclasses say how bytes
// cross the socket (read_available, write_pending).
class SocketTransport : public Transport {
 public:
  ~SocketTransport() override;

  evbuffer* input() const override { return in_; }
  evbuffer* output() const override { return out_; }
  void enable_read(bool on) override;
  bool reading() const override { return read_enabled_; }
  void set_watermarks(size_t max_input, size_t write_low) override;
  void set_timeouts(std::chrono::milliseconds read, std::chrono::milliseconds write) override;
  void close() override;

 protected:
  SocketTransport(EventLoop& loop, int fd, Handler* handler);

  // Accepted sockets read at once; outgoing ones once connected.
  void start(bool connecting);
  // Lets writes wait while the loop is busy (deferred_writes.h): for connections to upstreams.
  void defer_writes() { defer_writes_ = true; }

  // The socket is readable (or input_buffered() was set when reading resumed).
  virtual void read_available() = 0;
  // Moves output() toward the socket; ends with finish_write.
  virtual void write_pending() = 0;
  // Bytes read from the socket that input() has not seen yet (TLS records): reading resumes
  // with them without waiting for epoll, which would not report them.
  virtual bool input_buffered() const { return false; }

  // A busy peer cannot hold the loop on one connection longer than this per read event.
  static constexpr size_t READ_MAX_PER_EVENT = 256 * 1024;

  // How many bytes the next read of a pass may ask for, |total| being what the pass has read
  // so far; 0 while input() is at its watermark.
  size_t read_size(size_t total) const;
  // Keeps the read event registered exactly while reading is on, connected, not at EOF and
  // below the input watermark (and always during a TLS handshake); unchanged state costs no
  // syscall.
  void update_read_event();
  // Runs read_available in this loop turn.
  void schedule_read();
  // Runs write_pending in this loop turn, unless it is already due or waits for room.
  void schedule_write();
  // Reports a read pass: its bytes first, then the end of the stream or the error, as a
  // bufferevent reports them.
  void finish_read(size_t total, bool eof, const std::string& error);
  // Ends a write pass that left unsent() at |before| or less: waits for room while
  // |socket_full|, and reports the drain once unsent() is at the low watermark.
  void finish_write(size_t before, bool socket_full);
  // Sends from the front of |buf| what the socket takes and drains it; -1 with errno set when
  // the socket takes nothing. send and sendmsg go to the socket without the VFS read/write
  // layer (its file position lock and change notification) that write and writev pass.
  static ssize_t send_buffer(evbuffer* buf, int fd);

  evbuffer* in_;
  evbuffer* out_;
  bool handshaking_ = false;

 private:
  bool input_full() const { return max_input_ != 0 && evbuffer_get_length(in_) >= max_input_; }
  void add_write_event();
  void stop_waiting();
  // Runs the read timeout from now while the read event is registered, else stops it.
  void restart_read_timer();
  void size_first_read(size_t total);
  void finish_connect();
  static void on_input_changed(evbuffer*, const evbuffer_cb_info*, void* arg);
  static void on_output_changed(evbuffer*, const evbuffer_cb_info* info, void* arg);
  static void on_read(evutil_socket_t, short what, void* arg);
  static void on_write(evutil_socket_t, short what, void* arg);

  DeferredWrites& deferred_writes_;
  event* read_ev_;
  event* write_ev_;
  // The read timeout lives apart from read_ev_: a libevent event with a timeout re-adds it to
  // the timer heap on every read, which a Timer avoids.
  Timer read_timer_;
  size_t first_read_;
  size_t max_input_ = 0;
  size_t write_low_ = 0;
  std::chrono::milliseconds read_timeout_{0};
  std::chrono::milliseconds write_timeout_{0};
  bool read_enabled_ = true;
  bool read_registered_ = false;
  bool connecting_ = false;
  bool eof_ = false;
  bool defer_writes_ = false;
  bool write_waiting_ = false;     // write_ev_ queued in DeferredWrites
  bool write_queued_ = false;      // write_ev_ activated, its callback not yet run
  bool write_registered_ = false;  // write_ev_ added: waiting for room (or for the connect)
};

}  // namespace fd::proxy
