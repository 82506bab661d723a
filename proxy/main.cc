#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "acme/status_report.h"
#include "common/log.h"
#include "config/load.h"
#include "config/units.h"
#include "config/validate.h"
#include "proxy/cli.h"
#include "proxy/health_command.h"
#include "proxy/server.h"
#include "proxy/version.h"

namespace {

namespace fs = std::filesystem;
using fd::config::Config;

void print_version() {
  std::printf("frontdoor %s\n", fd::proxy::VERSION);
  std::printf("OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
  std::printf("nghttp2 %s\n", nghttp2_version(0)->version_str);
  std::printf("libevent %s\n", event_get_version());
  std::printf("libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
}

void report(const std::vector<fd::config::Diagnostic>& errors) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& d : errors) {
    std::cerr << fd::config::to_string(d) << "\n";
    list.push_back(fd::config::to_string(d));
  }
  fd::log::error("invalid configuration", {{"errors", list}});
}

// Where quick mode finds the development certificate: $FRONTDOOR_DEV_CERTS, ./certs-dev/out,
// or certs-dev/out beside the build directory holding the binary.
std::optional<fs::path> find_dev_certs() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("FRONTDOOR_DEV_CERTS")) {
    candidates.emplace_back(env);
  }
  candidates.emplace_back(fs::current_path() / "certs-dev" / "out");
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path() / "certs-dev" / "out");
  }
  for (const auto& dir : candidates) {
    if (fs::exists(dir / "localhost.crt", ec) && fs::exists(dir / "localhost.key", ec)) {
      return dir;
    }
  }
  return std::nullopt;
}

std::optional<Config> quick_config(const fd::proxy::CommandLine& cl) {
  Config cfg;
  cfg.source = "<quick>";
  auto from = fd::config::parse_host_port(cl.quick_from);
  if (!from) {
    std::cerr << "frontdoor: --from: " << from.error().message << "\n";
    return std::nullopt;
  }
  cfg.listeners.push_back({cl.quick_from, *from, true, false, 0, {}, {}});
  auto certs = find_dev_certs();
  if (!certs) {
    std::cerr << "frontdoor: no development certificate found: run certs-dev/make-dev-certs.sh "
                 "or set FRONTDOOR_DEV_CERTS to its output directory\n";
    return std::nullopt;
  }
  cfg.tls.certificates.push_back(
      {(*certs / "localhost.crt").string(), (*certs / "localhost.key").string(), {}});
  fd::config::Upstream up;
  up.name = "quick";
  for (const auto& to : cl.quick_to) {
    auto ep = fd::config::parse_host_port(to);
    if (!ep) {
      std::cerr << "frontdoor: --to: " << ep.error().message << "\n";
      return std::nullopt;
    }
    up.servers.push_back({to, *ep, 1, {}});
  }
  // Quick mode knows nothing about the servers' paths: check that they accept connections.
  up.health_check_enabled = true;
  up.health_check.path.clear();
  cfg.upstreams.push_back(std::move(up));
  cfg.routes.push_back({{"", "/"}, "quick", {}, {}});
  std::vector<fd::config::Diagnostic> errors;
  fd::config::validate(cfg, &errors);
  if (!errors.empty()) {
    report(errors);
    return std::nullopt;
  }
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::optional<std::string> env_config;
  if (const char* env = std::getenv("FRONTDOOR_CONFIG")) {
    env_config = env;
  }
  std::string error;
  auto cl = fd::proxy::parse_command_line(args, env_config, &error);
  if (!cl) {
    std::cerr << "frontdoor: " << error << "\n" << fd::proxy::usage();
    return 1;
  }
  using Mode = fd::proxy::CommandLine::Mode;
  if (cl->mode == Mode::help) {
    std::cout << fd::proxy::usage();
    return 0;
  }
  if (cl->mode == Mode::version) {
    print_version();
    return 0;
  }
  if (cl->mode == Mode::health) {
    return fd::proxy::run_health_command(cl->health_url, cl->health_timeout);
  }

  std::optional<Config> cfg;
  if (cl->mode == Mode::quick) {
    cfg = quick_config(*cl);
    if (!cfg) {
      return 1;
    }
  } else {
    auto loaded = fd::config::load_file(cl->config_path, fd::config::process_environment());
    if (!loaded.errors.empty()) {
      report(loaded.errors);
      return 1;
    }
    cfg = std::move(loaded.config);
    if (cl->mode == Mode::check) {
      std::cout << cl->config_path << ": configuration OK\n";
      return 0;
    }
    if (cl->mode == Mode::acme_status) {
      if (!cfg->tls.acme_enabled) {
        std::cerr << cl->config_path << ": no tls.acme section: nothing is managed\n";
        return 1;
      }
      std::cout << fd::acme::status_report(cfg->tls.acme, std::time(nullptr));
      return 0;
    }
  }

  fd::log::Level level;
  if (fd::log::parse_level(cfg->log.level, &level)) {
    fd::log::set_level(level);
  }
  // Writes to a peer that went away must fail with EPIPE, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  evthread_use_pthreads();
  fd::proxy::Server server(std::make_shared<const Config>(std::move(*cfg)));
  return server.run();
}
