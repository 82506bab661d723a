#include "proxy/ticket_keys.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

TEST(TicketKeys, RotationKeepsTheNewestFirstAndDropsTheOldest) {
  TicketKeys keys(3);
  auto first = keys.names();
  ASSERT_EQ(first.size(), 1u);
  keys.rotate();
  keys.rotate();
  auto three = keys.names();
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three.back(), first.front());
  EXPECT_NE(three.front(), three[1]);
  keys.rotate();
  auto after = keys.names();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[1], three.front());
  for (const auto& name : after) {
    EXPECT_NE(name, first.front()) << "the oldest key must be gone";
  }
}

TEST(TicketKeys, SizeZeroStillKeepsOneKey) {
  TicketKeys keys(0);
  keys.rotate();
  EXPECT_EQ(keys.names().size(), 1u);
}

}  // namespace
}  // namespace fd::proxy
