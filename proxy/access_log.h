#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fd::proxy {

// One request as the access log records it. The views point into the exchange (or connection)
// that writes the line.
struct AccessRecord {
  std::string_view client;
  std::string_view method;
  std::string host;
  std::string_view path;
  int status = 0;
  uint64_t bytes_in = 0;   // request body bytes received from the client
  uint64_t bytes_out = 0;  // response body bytes sent to the client
  double duration_ms = 0;
  std::string_view upstream;  // "ip:port" of the server that answered, "" if none
  std::string_view request_id;
  std::string_view error;  // why the proxy answered or cut the exchange, "" if it did not
};

// |r| as one JSON line {"ts","level":"info","msg":"access",...}, newline included.
void format_access_line(const AccessRecord& r, std::string* out);

// Writes that line to stdout, through the thread's AccessLogBatch if it has one. Any thread.
void write_access_line(const AccessRecord& r);

}  // namespace fd::proxy
