#include "proxy/router.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

TEST(Router, FirstMatchWinsOnHostAndPrefix) {
  Router r({{"api.test", "/v1/", 1}, {"*.example.com", "/", 2}, {"", "/static/", 3}, {"", "/", 0}});
  EXPECT_EQ(r.route("api.test", "/v1/users"), 1u);
  EXPECT_EQ(r.route("api.test", "/v2/users"), 0u);
  EXPECT_EQ(r.route("www.example.com", "/v1/x"), 2u);
  EXPECT_EQ(r.route("a.b.example.com", "/"), 2u);
  EXPECT_EQ(r.route("example.com", "/static/a.css"), 3u);
  EXPECT_EQ(r.route("other", "/"), 0u);
}

TEST(Router, NoMatchIsNullopt) {
  Router r({{"only.test", "/", 0}});
  EXPECT_FALSE(r.route("other.test", "/").has_value());
  EXPECT_TRUE(r.route("only.test", "/x").has_value());
}

TEST(Router, FromConfigMapsNamesAndLowercasesHosts) {
  std::vector<config::Upstream> ups(2);
  ups[0].name = "web";
  ups[1].name = "api";
  std::vector<config::Route> routes(2);
  routes[0].match = {"API.Test", "/v1/"};
  routes[0].upstream = "api";
  routes[1].match = {"", "/"};
  routes[1].upstream = "web";
  auto r = Router::from_config(routes, ups);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->route("api.test", "/v1/x"), 1u);
  EXPECT_EQ(r->route("api.test", "/"), 0u);
  routes[1].upstream = "missing";
  EXPECT_FALSE(Router::from_config(routes, ups).has_value());
}

}  // namespace
}  // namespace fd::proxy
