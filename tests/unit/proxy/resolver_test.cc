#include "proxy/resolver.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

std::vector<std::string> texts(const std::vector<ResolvedAddress>& list) {
  std::vector<std::string> out;
  for (const auto& a : list) {
    out.push_back(a.text);
  }
  return out;
}

TEST(HostsFile, AllAddressesOfANameInOrder) {
  const char* hosts =
      "# comment\n"
      "127.0.0.2 app.test other\n"
      "127.0.0.3\tapp.test   # trailing comment\n"
      "::1 App.Test\n"
      "127.0.0.2 app.test\n"
      "not-an-ip app.test\n"
      "127.0.0.9 unrelated\n";
  EXPECT_EQ(texts(lookup_hosts_text(hosts, "app.test", 8000)),
            (std::vector<std::string>{"127.0.0.2:8000", "127.0.0.3:8000", "[::1]:8000"}));
  EXPECT_EQ(texts(lookup_hosts_text(hosts, "other", 1)), (std::vector<std::string>{"127.0.0.2:1"}));
  EXPECT_TRUE(lookup_hosts_text(hosts, "missing", 1).empty());
}

TEST(Resolve, IpLiteralsNeedNoLookup) {
  EXPECT_TRUE(is_ip_literal("127.0.0.1"));
  EXPECT_TRUE(is_ip_literal("::1"));
  EXPECT_FALSE(is_ip_literal("localhost"));
  auto r = resolve(config::HostPort{"10.1.2.3", 80});
  ASSERT_TRUE(r);
  EXPECT_EQ(texts(*r), (std::vector<std::string>{"10.1.2.3:80"}));
}

}  // namespace
}  // namespace fd::proxy
