#include "proxy/http_message.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

TEST(Iequals, FoldsTheCaseOfAsciiLettersOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("X-REQUEST-ID", "x-request-id"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("host", "hosts"));
  EXPECT_FALSE(iequals("host", "hose"));
  // Pairs 0x20 apart that are not letters: '@' '`', '[' '{', '^' '~', '0' DLE, '-' '\r'.
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("^", "~"));
  EXPECT_FALSE(iequals("0", "\x10"));
  EXPECT_FALSE(iequals("a-b", "a\rb"));
  // Bytes above ASCII are compared as they are.
  EXPECT_FALSE(iequals("\xc3\xa9", "\xc3\x89"));
  EXPECT_TRUE(iequals("\xc3\xa9", "\xc3\xa9"));
}

TEST(HasToken, FindsATokenInACommaList) {
  EXPECT_TRUE(has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(has_token(" close ", "close"));
  EXPECT_FALSE(has_token("keep-alive", "keep"));
  EXPECT_FALSE(has_token("", "close"));
}

}  // namespace
}  // namespace fd::proxy
