#include "proxy/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstdlib>
#include <cstring>

#include "common/file.h"
#include "proxy/http_message.h"

namespace fd::proxy {
namespace {

ResolvedAddress from_sockaddr(const sockaddr* sa, socklen_t len) {
  ResolvedAddress out;
  std::memcpy(&out.addr, sa, len);
  out.len = len;
  char host[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    out.text = "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  } else {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
    out.text = std::string(host) + ":" + std::to_string(ntohs(in4->sin_port));
  }
  return out;
}

// Parses an IP literal with |port|; false if |ip| is not one.
bool parse_ip(const std::string& ip, uint16_t port, ResolvedAddress* out) {
  sockaddr_in in4{};
  if (inet_pton(AF_INET, ip.c_str(), &in4.sin_addr) == 1) {
    in4.sin_family = AF_INET;
    in4.sin_port = htons(port);
    *out = from_sockaddr(reinterpret_cast<sockaddr*>(&in4), sizeof in4);
    return true;
  }
  sockaddr_in6 in6{};
  if (inet_pton(AF_INET6, ip.c_str(), &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    *out = from_sockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof in6);
    return true;
  }
  return false;
}

void add_unique(std::vector<ResolvedAddress>* list, ResolvedAddress a) {
  for (const auto& existing : *list) {
    if (existing.text == a.text) {
      return;
    }
  }
  list->push_back(std::move(a));
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) {
      ++i;
    }
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
      ++i;
    }
    if (i > start) {
      out.push_back(line.substr(start, i - start));
    }
  }
  return out;
}

}  // namespace

bool is_ip_literal(const std::string& host) {
  ResolvedAddress ignored;
  return parse_ip(host, 0, &ignored);
}

std::vector<ResolvedAddress> lookup_hosts_text(std::string_view text, std::string_view name,
                                               uint16_t port) {
  std::vector<ResolvedAddress> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    line = line.substr(0, line.find('#'));
    auto w = words(line);
    for (size_t i = 1; i < w.size(); ++i) {
      ResolvedAddress a;
      if (iequals(w[i], name) && parse_ip(std::string(w[0]), port, &a)) {
        add_unique(&out, std::move(a));
      }
    }
  }
  return out;
}

Result<std::vector<ResolvedAddress>> resolve(const config::HostPort& endpoint) {
  ResolvedAddress literal;
  if (parse_ip(endpoint.host, endpoint.port, &literal)) {
    return std::vector<ResolvedAddress>{literal};
  }
  if (const char* hosts = std::getenv("FRONTDOOR_HOSTS_FILE")) {
    auto text = read_file(hosts);
    if (text) {
      auto found = lookup_hosts_text(*text, endpoint.host, endpoint.port);
      if (!found.empty()) {
        return found;
      }
    }
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(endpoint.port);
  int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return make_error(Errc::resolve, gai_strerror(rc));
  }
  std::vector<ResolvedAddress> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    add_unique(&out, from_sockaddr(ai->ai_addr, ai->ai_addrlen));
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace fd::proxy
