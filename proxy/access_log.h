#pragma once

#include <cstdint>
#include <string>

namespace fd::proxy {

// One request as the access log records it.
struct AccessRecord {
  const std::string* client;
  const std::string* method;
  std::string host;
  std::string path;
  int status = 0;
  uint64_t bytes_in = 0;   // request body bytes received from the client
  uint64_t bytes_out = 0;  // response body bytes sent to the client
  double duration_ms = 0;
  std::string upstream;  // "ip:port" of the server that answered, "" if none
  std::string request_id;
  std::string error;  // why the proxy answered or cut the exchange, "" if it did not
};

// |r| as one JSON line {"ts","level":"info","msg":"access",...}, newline included.
void format_access_line(const AccessRecord& r, std::string* out);

// Writes that line to stdout. Any thread.
void write_access_line(const AccessRecord& r);

}  // namespace fd::proxy
