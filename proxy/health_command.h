#pragma once

#include <chrono>
#include <string>

namespace fd::proxy {

// `frontdoor health`: one GET of |url| for container health checks, which run without a shell
// (deploy/Dockerfile). Returns the process exit code: 0 for a 2xx answer within |timeout|,
// 1 otherwise, with the status or the error on stderr.
int run_health_command(const std::string& url, std::chrono::milliseconds timeout);

}  // namespace fd::proxy
