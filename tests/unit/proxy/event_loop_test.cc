#include "proxy/event_loop.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "proxy/transport.h"
#include "tests/unit/proxy/test_tls_contexts.h"

namespace fd::proxy {
namespace {

// Queues a response as soon as the handshake completes, and a timer that stops the loop. Both
// fire in the next turn, the socket write first: the loop stops with the write callback that
// libevent deferred still queued, as when a worker's last connection closes during a drain.
class WriteThenStop : public Transport::Handler {
 public:
  explicit WriteThenStop(EventLoop& loop) : stop_(loop, [&loop] { loop.exit(); }) {}
  void attach(Transport* transport) { transport_ = transport; }

  void on_readable() override {}
  void on_drained() override {}
  void on_connected() override {
    connected = true;
    evbuffer_add(transport_->output(), "hello", 5);
    stop_.arm(std::chrono::milliseconds(0));
  }
  void on_closed(bool, bool, const std::string& why) override { failure = why; }

  bool connected = false;
  std::string failure;

 private:
  Transport* transport_ = nullptr;
  Timer stop_;
};

void mark_released(const void*, size_t, void* flag) {
  *static_cast<bool*>(flag) = true;
}

// libevent's OpenSSL bufferevent (the client here; the server transport was one until it
// moved to raw events) queues its write callback for the next loop turn and holds a reference
// to itself until it runs. When the loop stops first, the EventLoop must still run it, or the
// freed bufferevent is never finalized; a transport that wrote in the last turn must be freed
// too.
TEST(EventLoopTest, TlsTransportThatWroteInTheLastTurnIsReleased) {
  test::TlsContexts tls = test::make_tls_contexts();
  ASSERT_NE(tls.server, nullptr);

  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  bool released = false;
  {
    auto loop = std::make_unique<EventLoop>();
    WriteThenStop handler(*loop);
    auto server = Transport::accept_tls(*loop, fds[0], SSL_new(tls.server.get()), &handler);
    ASSERT_NE(server, nullptr);
    handler.attach(server.get());
    // Tied to the server's input buffer: it runs when libevent finally frees that buffer.
    static const char marker[] = "marker";
    evbuffer_add_reference(server->input(), marker, sizeof marker, &mark_released, &released);

    SSL* client_ssl = SSL_new(tls.client.get());
    bufferevent* client = bufferevent_openssl_socket_new(loop->base(), fds[1], client_ssl,
                                                         BUFFEREVENT_SSL_CONNECTING, 0);
    ASSERT_NE(client, nullptr);
    bufferevent_enable(client, EV_READ | EV_WRITE);
    Timer guard(*loop, [&] { loop->exit(); });
    guard.arm(std::chrono::seconds(10));

    loop->run();
    EXPECT_TRUE(handler.connected) << handler.failure;
    EXPECT_EQ(evbuffer_get_length(server->output()), 0u) << "the response was not written";

    bufferevent_free(client);
    SSL_free(client_ssl);
    ::close(fds[1]);
    server.reset();
  }
  EXPECT_TRUE(released) << "the server transport's bufferevent was never finalized";
}

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Runs |loop| until |limit| has passed.
void run_for(EventLoop& loop, milliseconds limit) {
  Timer stop(loop, [&loop] { loop.exit(); });
  stop.arm(limit);
  loop.run();
}

TEST(TimerTest, ArmingAgainLaterMovesTheExpiryLater) {
  EventLoop loop;
  int fired = 0;
  Clock::time_point at;
  Timer timer(loop, [&] {
    ++fired;
    at = Clock::now();
  });
  auto start = Clock::now();
  // Wide margins: a loaded CI machine may run a turn late by tens of milliseconds.
  timer.arm(milliseconds(30));
  timer.arm(milliseconds(500));
  run_for(loop, milliseconds(200));
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(timer.armed());
  run_for(loop, milliseconds(1500));
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(timer.armed());
  // The clock behind the timer is coarse: a tick (4 ms at HZ=250) early is within its reach.
  EXPECT_GE(at - start, milliseconds(490));
}

TEST(TimerTest, ArmingAgainSoonerMovesTheExpirySooner) {
  EventLoop loop;
  int fired = 0;
  Timer timer(loop, [&] { ++fired; });
  timer.arm(milliseconds(5000));
  timer.arm(milliseconds(20));
  run_for(loop, milliseconds(200));
  EXPECT_EQ(fired, 1);
}

TEST(TimerTest, ACancelledTimerDoesNotFireAndCanBeArmedAgain) {
  EventLoop loop;
  int fired = 0;
  Timer timer(loop, [&] { ++fired; });
  timer.arm(milliseconds(20));
  timer.cancel();
  EXPECT_FALSE(timer.armed());
  run_for(loop, milliseconds(100));
  EXPECT_EQ(fired, 0);
  timer.arm(milliseconds(20));
  run_for(loop, milliseconds(100));
  EXPECT_EQ(fired, 1);
}

TEST(TimerTest, TheLongestDurationNeverFires) {
  EventLoop loop;
  int fired = 0;
  Timer timer(loop, [&] { ++fired; });
  timer.arm(milliseconds::max());
  run_for(loop, milliseconds(50));
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(timer.armed());
}

}  // namespace
}  // namespace fd::proxy
