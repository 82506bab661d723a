#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "proxy/event_loop.h"
#include "proxy/transport.h"
#include "tests/unit/proxy/test_tls_contexts.h"

namespace fd::proxy {
namespace {

// Hooks for what the server side of a test does when the transport reports.
class Server : public Transport::Handler {
 public:
  explicit Server(EventLoop& loop) : loop_(loop) {}
  void on_readable() override {
    events += "r";
    if (consume) {
      take_input();
    }
    if (on_read) {
      on_read();
    }
  }
  void on_drained() override {
    drained = true;
    if (on_drain) {
      on_drain();
    }
  }
  void on_connected() override {
    events += "c";
    if (on_connect) {
      on_connect();
    }
  }
  void on_closed(bool eof, bool timeout, const std::string& why) override {
    events += eof ? "e" : timeout ? "t" : "x";
    reason = why;
    loop_.exit();
  }
  void take_input() {
    size_t n = evbuffer_get_length(transport->input());
    std::string chunk(n, '\0');
    evbuffer_remove(transport->input(), chunk.data(), n);
    received += chunk;
  }

  Transport* transport = nullptr;
  bool consume = true;
  bool drained = false;
  std::string received;
  std::string events;
  std::string reason;
  std::function<void()> on_read;
  std::function<void()> on_drain;
  std::function<void()> on_connect;

 private:
  EventLoop& loop_;
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return s;
}

// A socketpair with the server's transport on one end and a blocking OpenSSL client, run on
// its own thread, on the other.
class TlsTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(tls_.server, nullptr);
    // As frontdoor's own contexts: an idle connection gives its record buffers back.
    SSL_CTX_set_mode(tls_.server.get(), SSL_MODE_RELEASE_BUFFERS);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_), 0);
    ASSERT_EQ(fcntl(fds_[1], F_SETFL, 0), 0);
    // A client that waits for what never comes fails the test instead of hanging it.
    timeval limit{10, 0};
    setsockopt(fds_[1], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fds_[1], SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  }

  void TearDown() override {
    if (client_.joinable()) {
      client_.join();
    }
    ::close(fds_[1]);
  }

  std::unique_ptr<Transport> accept(Server& server) {
    auto t = Transport::accept_tls(loop_, fds_[0], SSL_new(tls_.server.get()), &server);
    server.transport = t.get();
    return t;
  }

  // Runs |body| with a connected client SSL on the client thread; the SSL is freed after.
  void client(std::function<void(SSL*)> body) {
    client_ = std::thread([this, body = std::move(body)] {
      SSL* ssl = SSL_new(tls_.client.get());
      SSL_set_fd(ssl, fds_[1]);
      if (SSL_connect(ssl) == 1) {
        body(ssl);
      }
      SSL_free(ssl);
    });
  }

  static std::string read_exactly(SSL* ssl, size_t n) {
    std::string got;
    char buf[16384];
    while (got.size() < n) {
      int r = SSL_read(ssl, buf, static_cast<int>(std::min(sizeof buf, n - got.size())));
      if (r <= 0) {
        break;
      }
      got.append(buf, static_cast<size_t>(r));
    }
    return got;
  }

  void run_for(std::chrono::milliseconds limit) {
    Timer guard(loop_, [this] { loop_.exit(); });
    guard.arm(limit);
    loop_.run();
  }

  EventLoop loop_;
  test::TlsContexts tls_ = test::make_tls_contexts();
  int fds_[2];
  std::thread client_;
};

TEST_F(TlsTransportTest, HandshakeThenBytesBothWaysThenTheEndOfTheStream) {
  Server server(loop_);
  auto t = accept(server);
  ASSERT_NE(t, nullptr);
  const std::string answer = pattern(300 * 1024);
  server.on_read = [&] {
    if (server.received == "hello") {
      evbuffer_add(t->output(), answer.data(), answer.size());
    }
  };
  std::string client_got;
  client([&](SSL* ssl) {
    SSL_write(ssl, "hello", 5);
    client_got = read_exactly(ssl, answer.size());
    SSL_shutdown(ssl);
    ::shutdown(fds_[1], SHUT_WR);
  });
  run_for(std::chrono::seconds(10));
  client_.join();
  EXPECT_TRUE(t->is_tls());
  EXPECT_EQ(server.events.substr(0, 2), "cr");
  EXPECT_EQ(server.events.back(), 'e') << server.reason;
  EXPECT_EQ(server.received, "hello");
  EXPECT_TRUE(client_got == answer) << "client received " << client_got.size() << " bytes";
  EXPECT_TRUE(server.drained);
  EXPECT_EQ(t->unsent(), 0u);
}

// The sealed records a full socket holds count as unsent, so an owner that closes once
// unsent() is 0 loses nothing; they leave, and the drain is reported, once the peer reads.
TEST_F(TlsTransportTest, RecordsWaitingForTheSocketCountAsUnsent) {
  Server server(loop_);
  auto t = accept(server);
  ASSERT_NE(t, nullptr);
  t->set_watermarks(0, 0);
  const std::string answer = pattern(2 * 1024 * 1024);
  Timer stop(loop_, [this] { loop_.exit(); });
  server.on_connect = [&] {
    evbuffer_add(t->output(), answer.data(), answer.size());
    stop.arm(std::chrono::milliseconds(200));
  };
  std::atomic<bool> go{false};
  std::string client_got;
  client([&](SSL* ssl) {
    while (!go) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    client_got = read_exactly(ssl, answer.size());
  });
  run_for(std::chrono::seconds(10));
  size_t queued = evbuffer_get_length(t->output());
  EXPECT_GT(t->unsent(), queued) << "no sealed records waited for the socket";
  EXPECT_FALSE(server.drained);
  server.on_drain = [&] {
    if (t->unsent() == 0) {
      loop_.exit();
    }
  };
  go = true;
  run_for(std::chrono::seconds(10));
  client_.join();
  EXPECT_EQ(t->unsent(), 0u);
  EXPECT_TRUE(client_got == answer) << "client received " << client_got.size() << " bytes";
}

// Records that OpenSSL read ahead stay there while input is at its watermark; epoll cannot
// report them once the socket is empty, so reading must resume from them by itself.
TEST_F(TlsTransportTest, ReadAheadRecordsAreDeliveredWhenReadingResumes) {
  Server server(loop_);
  auto t = accept(server);
  ASSERT_NE(t, nullptr);
  t->set_watermarks(4096, 0);
  server.consume = false;
  const std::string request = pattern(40 * 1024);
  Timer stop(loop_, [this] { loop_.exit(); });
  server.on_read = [&] { stop.arm(std::chrono::milliseconds(200)); };
  client([&](SSL* ssl) {
    SSL_write(ssl, request.data(), static_cast<int>(request.size()));
    char byte;
    SSL_read(ssl, &byte, 1);
  });
  run_for(std::chrono::seconds(10));
  EXPECT_LE(evbuffer_get_length(t->input()), 4096u);
  EXPECT_LT(evbuffer_get_length(t->input()), request.size());
  server.consume = true;
  server.on_read = [&] {
    if (server.received.size() == request.size()) {
      evbuffer_add(t->output(), "!", 1);
      stop.arm(std::chrono::milliseconds(0));
    }
  };
  server.take_input();
  run_for(std::chrono::seconds(10));
  client_.join();
  EXPECT_TRUE(server.received == request) << "server received " << server.received.size();
}

TEST_F(TlsTransportTest, MalformedClientHelloFailsTheHandshakeWithAnAlert) {
  Server server(loop_);
  auto t = accept(server);
  ASSERT_NE(t, nullptr);
  // A handshake record holding a ClientHello one byte long.
  const unsigned char hello[] = {22, 3, 1, 0, 5, 1, 0, 0, 1, 0};
  ASSERT_EQ(::write(fds_[1], hello, sizeof hello), static_cast<ssize_t>(sizeof hello));
  run_for(std::chrono::seconds(10));
  EXPECT_EQ(server.events, "x");
  EXPECT_EQ(server.reason.rfind("handshake: ", 0), 0u) << server.reason;
  // The alert OpenSSL sealed reaches the peer.
  unsigned char alert[7] = {};
  EXPECT_EQ(::read(fds_[1], alert, sizeof alert), 7);
  EXPECT_EQ(alert[0], 21);  // content type: alert
}

TEST_F(TlsTransportTest, PeerThatDropsTcpWithoutCloseNotifyIsAnEof) {
  Server server(loop_);
  auto t = accept(server);
  ASSERT_NE(t, nullptr);
  client([&](SSL* ssl) {
    SSL_write(ssl, "ping", 4);
    ::shutdown(fds_[1], SHUT_WR);
  });
  run_for(std::chrono::seconds(10));
  EXPECT_EQ(server.received, "ping");
  EXPECT_EQ(server.events.back(), 'e') << server.reason;
}

}  // namespace
}  // namespace fd::proxy
