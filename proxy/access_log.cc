#include "proxy/access_log.h"

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace fd::proxy {

void write_access_line(const AccessRecord& r) {
  nlohmann::json line = {
      {"ts", log::timestamp_now()},
      {"level", "info"},
      {"msg", "access"},
      {"client", *r.client},
      {"method", *r.method},
      {"host", r.host},
      {"path", r.path},
      {"status", r.status},
      {"bytes_in", r.bytes_in},
      {"bytes_out", r.bytes_out},
      {"duration_ms", static_cast<double>(static_cast<int64_t>(r.duration_ms * 1000)) / 1000.0},
      {"upstream", r.upstream},
      {"request_id", r.request_id},
  };
  if (!r.error.empty()) {
    line["error"] = r.error;
  }
  std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.push_back('\n');
  log::write_raw(out);
}

}  // namespace fd::proxy
