#include "proxy/access_log_batch.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "proxy/access_log.h"

namespace fd::proxy {
namespace {

// The batch writes into a SOCK_SEQPACKET socket: every write(2) arrives as one message, so
// the test sees where each write began and ended.
class AccessLogBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds_), 0);
    int size = 1 << 20;
    setsockopt(fds_[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fds_[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  void TearDown() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  // One loop turn: the batch's flush runs in it.
  void turn() {
    Timer stop(loop_, [this] { loop_.exit(); });
    stop.arm(std::chrono::milliseconds(0));
    loop_.run();
  }

  // Every write so far, one string each.
  std::vector<std::string> writes() {
    std::vector<std::string> out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fds_[1], buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) {
        return out;
      }
      out.emplace_back(buf, static_cast<size_t>(n));
    }
  }

  EventLoop loop_;
  int fds_[2];
};

TEST_F(AccessLogBatchTest, LinesOfOneTurnLeaveTogetherAtItsEnd) {
  AccessLogBatch batch(loop_, fds_[0]);
  batch.add("{\"n\":1}\n");
  batch.add("{\"n\":2}\n");
  batch.add("{\"n\":3}\n");
  EXPECT_TRUE(writes().empty()) << "written before the turn ended";
  turn();
  EXPECT_EQ(writes(), std::vector<std::string>{"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"});
  batch.add("{\"n\":4}\n");
  turn();
  EXPECT_EQ(writes(), std::vector<std::string>{"{\"n\":4}\n"});
}

TEST_F(AccessLogBatchTest, WritesHoldWholeLinesAndAtMostPipeBuf) {
  AccessLogBatch batch(loop_, fds_[0]);
  std::string all;
  for (int i = 0; i < 40; ++i) {
    std::string line = std::to_string(i) + std::string(300, 'x') + "\n";
    batch.add(line);
    all += line;
  }
  turn();
  auto got = writes();
  ASSERT_GT(got.size(), 1u);
  std::string joined;
  for (const auto& w : got) {
    EXPECT_LE(w.size(), static_cast<size_t>(PIPE_BUF));
    EXPECT_EQ(w.back(), '\n');
    joined += w;
  }
  EXPECT_EQ(joined, all);
}

TEST_F(AccessLogBatchTest, ALineLongerThanPipeBufGoesAloneAfterTheHeldOnes) {
  AccessLogBatch batch(loop_, fds_[0]);
  std::string long_line(PIPE_BUF + 100, 'y');
  long_line.back() = '\n';
  batch.add("first\n");
  batch.add(long_line);
  batch.add("last\n");
  turn();
  EXPECT_EQ(writes(), (std::vector<std::string>{"first\n", long_line, "last\n"}));
}

TEST_F(AccessLogBatchTest, DestructionWritesWhatIsHeld) {
  auto batch = std::make_unique<AccessLogBatch>(loop_, fds_[0]);
  batch->add("held\n");
  batch.reset();
  EXPECT_EQ(writes(), std::vector<std::string>{"held\n"});
}

TEST_F(AccessLogBatchTest, AccessLinesOfTheThreadGoThroughItsBatch) {
  EXPECT_EQ(AccessLogBatch::current(), nullptr);
  {
    AccessLogBatch batch(loop_, fds_[0]);
    EXPECT_EQ(AccessLogBatch::current(), &batch);
    AccessRecord r;
    r.method = "GET";
    r.path = "/batched";
    r.status = 204;
    write_access_line(r);
    turn();
    auto got = writes();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_NE(got[0].find("\"path\":\"/batched\""), std::string::npos) << got[0];
    EXPECT_NE(got[0].find("\"status\":204"), std::string::npos) << got[0];
  }
  EXPECT_EQ(AccessLogBatch::current(), nullptr);
}

}  // namespace
}  // namespace fd::proxy
