#include "proxy/transport.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "proxy/event_loop.h"

namespace fd::proxy {
namespace {

// Records what a plain TCP transport reports, and stops the loop on the end of the stream.
class Recorder : public Transport::Handler {
 public:
  explicit Recorder(EventLoop& loop) : loop_(loop) {}
  void on_readable() override {
    size_t n = evbuffer_get_length(transport->input());
    std::string chunk(n, '\0');
    evbuffer_remove(transport->input(), chunk.data(), n);
    received += chunk;
    events += "r";
  }
  void on_drained() override { events += "d"; }
  void on_connected() override { events += "c"; }
  void on_closed(bool eof, bool timeout, const std::string& why) override {
    events += eof ? "e" : timeout ? "t" : "x";
    reason = why;
    loop_.exit();
  }

  Transport* transport = nullptr;
  std::string received;
  std::string events;
  std::string reason;

 private:
  EventLoop& loop_;
};

// Runs |loop| until something calls exit(), for at most |limit|.
void run_loop_for(EventLoop& loop, std::chrono::milliseconds limit) {
  Timer guard(loop, [&loop] { loop.exit(); });
  guard.arm(limit);
  loop.run();
}

// Binds |fd| to a free port on 127.0.0.1 and stores that address in |addr|.
void bind_loopback(int fd, sockaddr_in* addr) {
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof *addr), 0);
  socklen_t len = sizeof *addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len), 0);
}

class TcpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_), 0);
  }
  void TearDown() override { ::close(fds_[1]); }

  void run_for(std::chrono::milliseconds limit) { run_loop_for(loop_, limit); }

  // A transport on our end of the pair that reports to |rec|.
  std::unique_ptr<Transport> accept(Recorder& rec) {
    auto t = Transport::accept_tcp(loop_, fds_[0], &rec);
    rec.transport = t.get();
    return t;
  }

  EventLoop loop_;
  int fds_[2];
};

TEST_F(TcpTransportTest, DeliversBytesThenTheEndOfTheStream) {
  Recorder rec(loop_);
  auto t = accept(rec);
  ASSERT_EQ(::write(fds_[1], "hello", 5), 5);
  ::shutdown(fds_[1], SHUT_WR);
  run_for(std::chrono::seconds(5));
  EXPECT_EQ(rec.received, "hello");
  EXPECT_EQ(rec.events, "re");
  EXPECT_FALSE(t->is_tls());
}

TEST_F(TcpTransportTest, WritesWhatTheOwnerQueuedAndReportsTheDrain) {
  Recorder rec(loop_);
  auto t = accept(rec);
  // Two pieces queued in one callback leave in one write, after which on_drained fires once.
  evbuffer_add(t->output(), "head ", 5);
  evbuffer_add(t->output(), "body", 4);
  Timer stop(loop_, [this] { loop_.exit(); });
  stop.arm(std::chrono::milliseconds(50));
  loop_.run();
  char buf[32] = {};
  ASSERT_EQ(::read(fds_[1], buf, sizeof buf), 9);
  EXPECT_EQ(std::string(buf, 9), "head body");
  EXPECT_EQ(rec.events, "d");
  EXPECT_EQ(evbuffer_get_length(t->output()), 0u);
}

TEST_F(TcpTransportTest, SendsOutputOfMoreChunksThanOneSendTakesInOrder) {
  Recorder rec(loop_);
  auto t = accept(rec);
  // Each reference is a chunk of its own: 300 of them are more than one sendmsg passes (128).
  std::vector<std::string> pieces;
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    pieces.push_back("<" + std::to_string(i) + ">");
    expected += pieces.back();
  }
  for (const auto& p : pieces) {
    evbuffer_add_reference(t->output(), p.data(), p.size(), nullptr, nullptr);
  }
  ASSERT_GT(evbuffer_peek(t->output(), -1, nullptr, nullptr, 0), 128);
  std::string got;
  char buf[4096];
  for (int i = 0; i < 50 && got.size() < expected.size(); ++i) {
    run_for(std::chrono::milliseconds(10));
    ssize_t n;
    while ((n = ::recv(fds_[1], buf, sizeof buf, MSG_DONTWAIT)) > 0) {
      got.append(buf, static_cast<size_t>(n));
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(evbuffer_get_length(t->output()), 0u);
}

TEST_F(TcpTransportTest, StopsReadingAtTheInputWatermarkAndResumesWhenDrained) {
  class Holder : public Transport::Handler {
   public:
    void on_readable() override { ++reads; }
    void on_drained() override {}
    void on_closed(bool, bool, const std::string&) override {}
    int reads = 0;
  } holder;
  auto t = Transport::accept_tcp(loop_, fds_[0], &holder);
  t->set_watermarks(4, 0);
  ASSERT_EQ(::write(fds_[1], "0123456789", 10), 10);
  run_for(std::chrono::milliseconds(50));
  // Held at the watermark: only the first 4 bytes were read, once.
  EXPECT_EQ(evbuffer_get_length(t->input()), 4u);
  EXPECT_EQ(holder.reads, 1);
  evbuffer_drain(t->input(), 4);
  run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(evbuffer_get_length(t->input()), 4u);
  EXPECT_EQ(holder.reads, 2);
}

TEST_F(TcpTransportTest, ReadTimeoutFiresWhenThePeerIsSilent) {
  Recorder rec(loop_);
  auto t = accept(rec);
  t->set_timeouts(std::chrono::milliseconds(30), std::chrono::milliseconds(0));
  run_for(std::chrono::seconds(5));
  EXPECT_EQ(rec.events, "t");
}

TEST_F(TcpTransportTest, ReadTimeoutRestartsWithEachRead) {
  Recorder rec(loop_);
  auto t = accept(rec);
  t->set_timeouts(std::chrono::milliseconds(400), std::chrono::milliseconds(0));
  // A byte every 100 ms for 500 ms, more than the timeout, and never 400 ms of silence (wide
  // margins: a loaded CI machine may run a turn late by tens of milliseconds).
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(::write(fds_[1], "x", 1), 1);
    run_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(rec.received, "xxxxx");
  EXPECT_EQ(rec.events, "rrrrr");
  run_for(std::chrono::seconds(5));
  EXPECT_EQ(rec.events, "rrrrrt");
}

TEST_F(TcpTransportTest, SettingNoReadTimeoutClearsThePreviousOne) {
  Recorder rec(loop_);
  auto t = accept(rec);
  t->set_timeouts(std::chrono::milliseconds(30), std::chrono::milliseconds(0));
  t->set_timeouts(std::chrono::milliseconds(0), std::chrono::milliseconds(0));
  run_for(std::chrono::milliseconds(150));
  EXPECT_EQ(rec.events, "");
}

TEST_F(TcpTransportTest, ConnectReportsARefusedPortAndAConnectedOne) {
  // A port that was listening and is closed again refuses.
  int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr;
  bind_loopback(probe, &addr);
  ::close(probe);
  ASSERT_FALSE(HasFatalFailure());

  Recorder refused(loop_);
  auto r = Transport::connect_tcp(loop_, reinterpret_cast<sockaddr*>(&addr), sizeof addr, &refused);
  if (r) {
    refused.transport = r->get();
    run_for(std::chrono::seconds(5));
    EXPECT_EQ(refused.events, "x");
    EXPECT_EQ(refused.reason, "connect: Connection refused");
  } else {
    EXPECT_NE(r.error().message.find("Connection refused"), std::string::npos);
  }

  int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bind_loopback(server, &addr);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(::listen(server, 1), 0);
  Recorder ok(loop_);
  auto c = Transport::connect_tcp(loop_, reinterpret_cast<sockaddr*>(&addr), sizeof addr, &ok);
  ASSERT_TRUE(c);
  ok.transport = c->get();
  // Queued before the connect completes: it leaves once connected.
  evbuffer_add((*c)->output(), "ping", 4);
  run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(ok.events, "cd");
  int peer = ::accept(server, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  char buf[8] = {};
  EXPECT_EQ(::read(peer, buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
  ::close(peer);
  ::close(server);
}

// A listening socket on 127.0.0.1 and an upstream transport connected to it.
class UpstreamWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bind_loopback(server_, &addr_);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(::listen(server_, 1), 0);
    auto c = Transport::connect_tcp(loop_, upstream_addr(), sizeof addr_, &rec_);
    ASSERT_TRUE(c);
    upstream_ = std::move(*c);
    rec_.transport = upstream_.get();
    run_for(std::chrono::milliseconds(100));
    ASSERT_EQ(rec_.events, "c");
    peer_ = ::accept4(server_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_GE(peer_, 0);
  }
  void TearDown() override {
    ::close(peer_);
    ::close(server_);
  }

  void run_for(std::chrono::milliseconds limit) { run_loop_for(loop_, limit); }
  const sockaddr* upstream_addr() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  void make_loop_busy() {
    for (int i = 0; i < DeferredWrites::BUSY_READS; ++i) {
      loop_.deferred_writes().note_read();
    }
    ASSERT_TRUE(loop_.deferred_writes().busy());
  }
  std::string peer_received() {
    char buf[64];
    ssize_t n = ::read(peer_, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  EventLoop loop_;
  Recorder rec_{loop_};
  std::unique_ptr<Transport> upstream_;
  sockaddr_in addr_{};
  int server_ = -1;
  int peer_ = -1;
};

TEST_F(UpstreamWriteTest, WaitsWhileTheLoopIsBusyThenLeaves) {
  make_loop_busy();
  evbuffer_add(upstream_->output(), "GET", 3);
  EXPECT_EQ(loop_.deferred_writes().waiting(), 1u);
  run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(loop_.deferred_writes().waiting(), 0u);
  EXPECT_EQ(peer_received(), "GET");
  EXPECT_EQ(rec_.events, "cd");
}

TEST_F(UpstreamWriteTest, WritesAtTheEndOfThePassWhenTheLoopIsNotBusy) {
  evbuffer_add(upstream_->output(), "GET", 3);
  EXPECT_EQ(loop_.deferred_writes().waiting(), 0u);
  run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(peer_received(), "GET");
}

TEST_F(UpstreamWriteTest, AClosedOrFreedUpstreamLeavesNoWaitingWrite) {
  make_loop_busy();
  evbuffer_add(upstream_->output(), "GET", 3);
  upstream_->close();
  EXPECT_EQ(loop_.deferred_writes().waiting(), 0u);
  run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(peer_received(), "");

  // A second upstream freed while its write waits: the loop must not touch its event again.
  Recorder other(loop_);
  auto c = Transport::connect_tcp(loop_, upstream_addr(), sizeof addr_, &other);
  ASSERT_TRUE(c);
  other.transport = c->get();
  run_for(std::chrono::milliseconds(50));
  ASSERT_EQ(other.events, "c");
  make_loop_busy();
  evbuffer_add((*c)->output(), "GET", 3);
  EXPECT_EQ(loop_.deferred_writes().waiting(), 1u);
  c->reset();
  EXPECT_EQ(loop_.deferred_writes().waiting(), 0u);
  run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(other.events, "c");
}

}  // namespace
}  // namespace fd::proxy
