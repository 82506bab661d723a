#include "proxy/cli.h"

#include <gtest/gtest.h>

namespace fd::proxy {
namespace {

std::optional<CommandLine> parse(std::vector<std::string> args,
                                 std::optional<std::string> env = std::nullopt) {
  std::string error;
  return parse_command_line(args, env, &error);
}

TEST(Cli, ConfigForms) {
  EXPECT_EQ(parse({"-c", "a.yaml"})->config_path, "a.yaml");
  EXPECT_EQ(parse({"--config", "b.yaml"})->config_path, "b.yaml");
  EXPECT_EQ(parse({"--config=c.yaml"})->config_path, "c.yaml");
  EXPECT_EQ(parse({}, "env.yaml")->config_path, "env.yaml");
  EXPECT_EQ(parse({"-c", "a.yaml"}, "env.yaml")->config_path, "a.yaml");
  EXPECT_EQ(parse({"-c", "a.yaml"})->mode, CommandLine::Mode::run);
}

TEST(Cli, CheckVersionHelp) {
  EXPECT_EQ(parse({"--check", "-c", "a.yaml"})->mode, CommandLine::Mode::check);
  EXPECT_EQ(parse({"--version"})->mode, CommandLine::Mode::version);
  EXPECT_EQ(parse({"--help"})->mode, CommandLine::Mode::help);
}

TEST(Cli, QuickMode) {
  auto cl = parse({"proxy", "--from", "127.0.0.1:8443", "--to", "a:1,b:2", "--to=c:3"});
  ASSERT_TRUE(cl);
  EXPECT_EQ(cl->mode, CommandLine::Mode::quick);
  EXPECT_EQ(cl->quick_from, "127.0.0.1:8443");
  EXPECT_EQ(cl->quick_to, (std::vector<std::string>{"a:1", "b:2", "c:3"}));
}

TEST(Cli, AcmeStatus) {
  auto cl = parse({"acme", "status", "-c", "f.yaml"});
  ASSERT_TRUE(cl);
  EXPECT_EQ(cl->mode, CommandLine::Mode::acme_status);
  EXPECT_EQ(cl->config_path, "f.yaml");
  EXPECT_FALSE(parse({"acme", "status"}));
}

TEST(Cli, Health) {
  auto defaults = parse({"health"});
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->mode, CommandLine::Mode::health);
  EXPECT_EQ(defaults->health_url, "http://127.0.0.1:9901/ready");
  EXPECT_EQ(defaults->health_timeout, std::chrono::milliseconds(2000));
  EXPECT_TRUE(defaults->config_path.empty());

  auto set = parse({"health", "--url=http://[::1]:9000/ready", "--timeout", "500ms"});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->health_url, "http://[::1]:9000/ready");
  EXPECT_EQ(set->health_timeout, std::chrono::milliseconds(500));

  std::string error;
  EXPECT_FALSE(parse_command_line({"health", "--timeout", "0s"}, std::nullopt, &error));
  EXPECT_NE(error.find("positive duration"), std::string::npos);
  EXPECT_FALSE(parse_command_line({"health", "-c", "f.yaml"}, std::nullopt, &error));
  EXPECT_NE(error.find("-c"), std::string::npos);
}

TEST(Cli, UsageErrors) {
  std::string error;
  EXPECT_FALSE(parse_command_line({}, std::nullopt, &error));
  EXPECT_NE(error.find("no config file"), std::string::npos);
  EXPECT_FALSE(parse_command_line({"--bogus"}, std::nullopt, &error));
  EXPECT_NE(error.find("--bogus"), std::string::npos);
  EXPECT_FALSE(parse_command_line({"-c"}, std::nullopt, &error));
  EXPECT_FALSE(parse_command_line({"proxy", "--from", "x:1"}, std::nullopt, &error));
}

}  // namespace
}  // namespace fd::proxy
