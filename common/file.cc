#include "common/file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace fd {

Result<std::string> read_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) {
    return make_error(Errc::io, std::strerror(errno));
  }
  std::string data;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, file.get())) > 0) {
    data.append(buf, n);
  }
  if (std::ferror(file.get())) {
    return make_error(Errc::io, std::strerror(errno));
  }
  return data;
}

}  // namespace fd
