#include "proxy/service_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace fd::proxy {
namespace {

// A datagram socket standing in for systemd's, with NOTIFY_SOCKET pointing at it for the
// duration of one test (the variable is process-wide, so it is restored afterwards).
class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* prior = std::getenv("NOTIFY_SOCKET");
    had_prior_ = prior != nullptr;
    if (had_prior_) {
      prior_ = prior;
    }
    path_ = "/tmp/fd-notify-test-" + std::to_string(getpid()) + ".sock";
    unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path_.size(), sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{2, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }

  void TearDown() override {
    if (had_prior_) {
      setenv("NOTIFY_SOCKET", prior_.c_str(), 1);
    } else {
      unsetenv("NOTIFY_SOCKET");
    }
    if (fd_ >= 0) {
      close(fd_);
    }
    unlink(path_.c_str());
  }

  // The next datagram, or "" when none arrives within the receive timeout.
  std::string receive() {
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  std::string path_;
  std::string prior_;
  bool had_prior_ = false;
  int fd_ = -1;
};

TEST_F(ServiceNotifyTest, SendsEachState) {
  notify_ready("serving");
  EXPECT_EQ(receive(), "READY=1\nSTATUS=serving");
  notify_stopping();
  EXPECT_EQ(receive(), "STOPPING=1");
  notify_status("draining 3 connections");
  EXPECT_EQ(receive(), "STATUS=draining 3 connections");
}

TEST_F(ServiceNotifyTest, ReloadingCarriesTheMonotonicTime) {
  timespec before{};
  clock_gettime(CLOCK_MONOTONIC, &before);
  notify_reloading();
  timespec after{};
  clock_gettime(CLOCK_MONOTONIC, &after);
  std::string got = receive();
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(got.rfind(prefix, 0), 0u) << got;
  std::string digits = got.substr(prefix.size());
  ASSERT_FALSE(digits.empty());
  ASSERT_EQ(digits.find_first_not_of("0123456789"), std::string::npos) << got;
  uint64_t usec = std::stoull(digits);
  auto to_usec = [](const timespec& t) {
    return static_cast<uint64_t>(t.tv_sec) * 1000000u + static_cast<uint64_t>(t.tv_nsec) / 1000u;
  };
  EXPECT_GE(usec, to_usec(before));
  EXPECT_LE(usec, to_usec(after));
}

// A status is one assignment: a newline in it must not smuggle in another (READY=1 here).
TEST_F(ServiceNotifyTest, StatusStaysOneLine) {
  notify_status("bad\nREADY=1");
  EXPECT_EQ(receive(), "STATUS=bad READY=1");
}

// The variable stays set: a reload or the shutdown notifies through it again.
TEST_F(ServiceNotifyTest, KeepsNotifySocket) {
  notify_ready("serving");
  EXPECT_EQ(receive(), "READY=1\nSTATUS=serving");
  EXPECT_NE(std::getenv("NOTIFY_SOCKET"), nullptr);
}

// Outside systemd nothing is sent and nothing is logged (a failure would log a warning line).
TEST(ServiceNotifyNoSocket, IsANoOpWithoutNotifySocket) {
  const char* prior = std::getenv("NOTIFY_SOCKET");
  std::string saved = prior ? prior : "";
  unsetenv("NOTIFY_SOCKET");
  ::testing::internal::CaptureStdout();
  notify_ready("serving");
  notify_reloading();
  notify_stopping();
  notify_status("x");
  std::string logged = ::testing::internal::GetCapturedStdout();
  if (prior != nullptr) {
    setenv("NOTIFY_SOCKET", saved.c_str(), 1);
  }
  EXPECT_EQ(logged, "");
}

}  // namespace
}  // namespace fd::proxy
