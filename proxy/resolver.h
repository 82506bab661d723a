#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace fd::proxy {

struct ResolvedAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // numeric "ip:port" or "[v6]:port"
};

// Addresses listed for |name| in /etc/hosts-format |text| ("ADDR NAME [NAME...]" lines, '#'
// comments), in file order, each with |port|. Names compare case-insensitively.
std::vector<ResolvedAddress> lookup_hosts_text(std::string_view text, std::string_view name,
                                               uint16_t port);

// Every address of |endpoint|: an IP literal as is; a name from the hosts file named by
// $FRONTDOOR_HOSTS_FILE when it lists it, else from the system resolver (blocking). Duplicates
// are removed.
Result<std::vector<ResolvedAddress>> resolve(const config::HostPort& endpoint);

// True when |host| is an IPv4 or IPv6 literal (so it never needs re-resolving).
bool is_ip_literal(const std::string& host);

}  // namespace fd::proxy
