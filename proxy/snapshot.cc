#include "proxy/snapshot.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstring>

namespace fd::proxy {
namespace {

std::string numeric_address(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
  port = ntohs(in4->sin_port);
  return std::string(host) + ":" + std::to_string(port);
}

// Every address |spec| resolves to, one UpstreamServer each.
Result<std::vector<std::shared_ptr<UpstreamServer>>> resolve(const config::ServerSpec& spec) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(spec.endpoint.port);
  int rc = getaddrinfo(spec.endpoint.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return make_error(Errc::resolve,
                      "cannot resolve upstream server " + spec.address + ": " + gai_strerror(rc));
  }
  std::vector<std::shared_ptr<UpstreamServer>> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    auto server = std::make_shared<UpstreamServer>();
    std::memcpy(&server->addr, ai->ai_addr, ai->ai_addrlen);
    server->addr_len = ai->ai_addrlen;
    server->address = numeric_address(ai->ai_addr);
    bool duplicate = false;
    for (const auto& s : out) {
      duplicate = duplicate || s->address == server->address;
    }
    if (!duplicate) {
      out.push_back(std::move(server));
    }
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace

RuntimeSnapshot::RuntimeSnapshot(std::shared_ptr<const config::Config> config, Router router)
    : config_(std::move(config)), router_(std::move(router)) {}

Result<std::shared_ptr<const RuntimeSnapshot>> RuntimeSnapshot::build(
    std::shared_ptr<const config::Config> config) {
  auto router = Router::from_config(config->routes, config->upstreams);
  if (!router) {
    return make_error(Errc::internal, "a route names an unknown upstream");
  }
  std::shared_ptr<RuntimeSnapshot> snap(new RuntimeSnapshot(config, std::move(*router)));
  for (const auto& upstream : config->upstreams) {
    auto group = std::make_unique<UpstreamGroup>();
    group->settings = &upstream;
    for (const auto& spec : upstream.servers) {
      auto servers = resolve(spec);
      if (!servers) {
        return servers.error();
      }
      for (auto& s : *servers) {
        group->servers.push_back(std::move(s));
      }
    }
    snap->groups_.push_back(std::move(group));
  }
  bool any_tls = false;
  for (const auto& l : config->listeners) {
    if (l.tls && !any_tls) {
      any_tls = true;
      snap->https_port_ = l.endpoint.port;
    }
  }
  if (any_tls) {
    auto tls = TlsContextSet::build(config->tls);
    if (!tls) {
      return tls.error();
    }
    snap->tls_ = std::move(*tls);
  }
  return std::shared_ptr<const RuntimeSnapshot>(std::move(snap));
}

}  // namespace fd::proxy
