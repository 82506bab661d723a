#include "acme/storage.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>
#include <utility>

namespace fd::acme {
namespace {

constexpr int DIR_MODE = 0700;
// Everything is 0600, not only keys (like certmagic's FileStorage): the chain and the account
// URL are not secret, but nothing outside frontdoor needs to read them either.
constexpr int FILE_MODE = 0600;
// Longest folder name derived from a directory URL, and longest lock file stem. NAME_MAX is 255;
// a DNS name is at most 253, so "<ca>-<name>.lock" can exceed it and is shortened with a hash.
constexpr size_t MAX_CA_LENGTH = 120;
constexpr size_t MAX_STEM_LENGTH = 240;

Error io_error(const std::string& what, int err) {
  return make_error(Errc::io, what + ": " + std::strerror(err));
}

// Closes |fd| on scope exit unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

// FNV-1a: stable across builds and platforms, unlike std::hash, so folder names never change.
uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    hash = (hash ^ c) * 0x100000001b3ULL;
  }
  return hash;
}

// Keeps |text| within |max| characters, replacing the tail with a hash of the whole.
std::string fit(const std::string& text, size_t max) {
  if (text.size() <= max) {
    return text;
  }
  return text.substr(0, max - 17) + "_" + hex64(fnv1a(text));
}

bool safe_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// "https://127.0.0.1:14000/dir" -> "127.0.0.1_14000_dir": scheme, query and fragment dropped,
// host lowercased, every character outside [A-Za-z0-9._-] replaced by '_'.
std::string ca_folder(const std::string& url) {
  std::string_view rest = url;
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    rest.remove_prefix(scheme + 3);
  }
  if (auto end = rest.find_first_of("?#"); end != std::string_view::npos) {
    rest = rest.substr(0, end);
  }
  while (!rest.empty() && rest.back() == '/') {
    rest.remove_suffix(1);
  }
  const size_t host_end = std::min(rest.find('/'), rest.size());
  std::string out;
  out.reserve(rest.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    char c = rest[i];
    if (i < host_end && c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    out.push_back(safe_char(c) ? c : '_');
  }
  // Only "." and ".." are special among names made of safe characters.
  if (out.empty() || out == "." || out == "..") {
    out.insert(0, "_");
  }
  return fit(out, MAX_CA_LENGTH);
}

Error invalid_name(const std::string& name, const char* why) {
  return make_error(Errc::invalid_argument, "invalid certificate name \"" + name + "\": " + why);
}

// A name becomes a folder and part of a lock file name, so only lowercase DNS names are
// accepted: labels of [a-z0-9-] separated by single dots. That excludes "/", "..", leading
// dots, NUL and every other character with a meaning to the file system. Wildcards ("*.") are
// refused too: http-01 and tls-alpn-01 cannot validate them.
Result<void> check_name(const std::string& name) {
  if (name.empty()) {
    return invalid_name(name, "empty");
  }
  if (name.size() > 253) {
    return invalid_name(name, "longer than 253 characters");
  }
  size_t label_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      const size_t length = i - label_start;
      if (length == 0) {
        return invalid_name(name, "empty label");
      }
      if (length > 63) {
        return invalid_name(name, "label longer than 63 characters");
      }
      if (name[label_start] == '-' || name[i - 1] == '-') {
        return invalid_name(name, "label starts or ends with '-'");
      }
      label_start = i + 1;
      continue;
    }
    const char c = name[i];
    if (c >= 'A' && c <= 'Z') {
      return invalid_name(name, "not lowercase");
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return invalid_name(name, "only a-z, 0-9, '-' and '.' are allowed");
    }
  }
  return {};
}

Result<void> fsync_dir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return io_error(path, errno);
  }
  FdCloser closer(fd);
  if (::fsync(fd) != 0) {
    return io_error("fsync " + path, errno);
  }
  return {};
}

std::string parent_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Creates |path| (and missing parents) with 0700; an existing directory is left as it is.
// New entries are made durable by syncing the parent.
Result<void> make_dirs(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return make_error(Errc::io, path + ": exists and is not a directory");
    }
    return {};
  }
  if (errno != ENOENT) {
    return io_error(path, errno);
  }
  const std::string parent = parent_of(path);
  if (parent != path) {
    if (auto made = make_dirs(parent); !made) {
      return made;
    }
  }
  if (::mkdir(path.c_str(), DIR_MODE) != 0) {
    if (errno == EEXIST) {  // another replica was faster
      return make_dirs(path);
    }
    return io_error("mkdir " + path, errno);
  }
  // The umask may have removed owner bits.
  if (::chmod(path.c_str(), DIR_MODE) != 0) {
    return io_error("chmod " + path, errno);
  }
  return fsync_dir(parent);
}

// Reads |path|; a missing file is Errc::io "not found", as the header promises.
Result<std::string> read_whole(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return make_error(Errc::io, "not found");
    }
    return io_error(path, errno);
  }
  FdCloser closer(fd);
  std::string data;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return io_error(path, errno);
    }
    if (n == 0) {
      return data;
    }
    data.append(buf, static_cast<size_t>(n));
  }
}

Result<void> write_all(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return io_error("write " + path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Storage::Storage(std::string dir, std::string directory_url)
    : dir_(std::move(dir)), ca_(ca_folder(directory_url)) {
  while (dir_.size() > 1 && dir_.back() == '/') {
    dir_.pop_back();
  }
}

Result<void> Storage::prepare() {
  if (dir_.empty()) {
    return make_error(Errc::invalid_argument, "empty storage directory");
  }
  for (const std::string& path :
       {dir_, dir_ + "/accounts", dir_ + "/accounts/" + ca_, dir_ + "/certificates",
        dir_ + "/certificates/" + ca_, dir_ + "/locks"}) {
    if (auto made = make_dirs(path); !made) {
      return made;
    }
  }
  return {};
}

Result<std::string> Storage::read_account_key() const {
  return read_whole(dir_ + "/accounts/" + ca_ + "/account.key");
}

Result<void> Storage::write_account_key(const std::string& pem) {
  return write_atomic(dir_ + "/accounts/" + ca_ + "/account.key", pem, FILE_MODE);
}

Result<std::string> Storage::read_account_url() const {
  const std::string path = dir_ + "/accounts/" + ca_ + "/account.json";
  auto text = read_whole(path);
  if (!text) {
    return text.error();
  }
  auto json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("url") || !json["url"].is_string()) {
    return make_error(Errc::io, path + ": not a JSON object with a \"url\" string");
  }
  return json["url"].get<std::string>();
}

Result<void> Storage::write_account_url(const std::string& url) {
  const nlohmann::json json = {{"url", url}};
  return write_atomic(dir_ + "/accounts/" + ca_ + "/account.json", json.dump() + "\n", FILE_MODE);
}

Result<std::string> Storage::read_chain(const std::string& name) const {
  if (auto ok = check_name(name); !ok) {
    return ok.error();
  }
  return read_whole(dir_ + "/certificates/" + ca_ + "/" + name + "/chain.pem");
}

Result<std::string> Storage::read_key(const std::string& name) const {
  if (auto ok = check_name(name); !ok) {
    return ok.error();
  }
  return read_whole(dir_ + "/certificates/" + ca_ + "/" + name + "/key.pem");
}

Result<void> Storage::write_certificate(const std::string& name, const std::string& chain_pem,
                                        const std::string& key_pem) {
  if (auto ok = check_name(name); !ok) {
    return ok;
  }
  const std::string folder = dir_ + "/certificates/" + ca_ + "/" + name;
  if (auto made = make_dirs(folder); !made) {
    return made;
  }
  if (auto written = write_atomic(folder + "/key.pem", key_pem, FILE_MODE); !written) {
    return written;
  }
  return write_atomic(folder + "/chain.pem", chain_pem, FILE_MODE);
}

Result<std::string> Storage::read_state(const std::string& name) const {
  if (auto ok = check_name(name); !ok) {
    return ok.error();
  }
  return read_whole(dir_ + "/certificates/" + ca_ + "/" + name + "/state.json");
}

Result<void> Storage::write_state(const std::string& name, const std::string& json) {
  if (auto ok = check_name(name); !ok) {
    return ok;
  }
  const std::string folder = dir_ + "/certificates/" + ca_ + "/" + name;
  if (auto made = make_dirs(folder); !made) {
    return made;
  }
  return write_atomic(folder + "/state.json", json, FILE_MODE);
}

Storage::Lock::~Lock() {
  if (fd_ >= 0) {
    ::close(fd_);  // releases the flock
  }
}

Storage::Lock::Lock(Lock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

Result<Storage::Lock> Storage::lock(const std::string& name, const std::function<bool()>& give_up) {
  if (auto ok = check_name(name); !ok) {
    return ok.error();
  }
  const std::string path = dir_ + "/locks/" + fit(ca_ + "-" + name, MAX_STEM_LENGTH) + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
  if (fd < 0) {
    return io_error(path, errno);
  }
  FdCloser closer(fd);
  // flock() locks belong to the open file description, so two Locks taken in one process on
  // the same name exclude each other too (as between replicas).
  // Polled rather than blocking, so a replica waiting for another one's order still stops
  // promptly on shutdown.
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EINTR && errno != EWOULDBLOCK) {
      return io_error("flock " + path, errno);
    }
    if (give_up && give_up()) {
      return make_error(Errc::io, "waiting for " + path + ": abandoned");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Lock(closer.release());
}

namespace {

bool is_token(const std::string& token) {
  if (token.empty() || token.size() > 256) {
    return false;
  }
  for (char c : token) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<void> Storage::write_challenge(const std::string& token,
                                      const std::string& key_authorization) {
  if (!is_token(token)) {
    return make_error(Errc::invalid_argument, "invalid challenge token");
  }
  if (auto made = make_dirs(dir_ + "/challenges"); !made) {
    return made;
  }
  return write_atomic(dir_ + "/challenges/" + token, key_authorization, FILE_MODE);
}

void Storage::remove_challenge(const std::string& token) {
  if (is_token(token)) {
    ::unlink((dir_ + "/challenges/" + token).c_str());
  }
}

Result<std::string> Storage::read_challenge(const std::string& token) const {
  if (!is_token(token)) {
    return make_error(Errc::invalid_argument, "invalid challenge token");
  }
  return read_whole(dir_ + "/challenges/" + token);
}

Result<void> Storage::write_atomic(const std::string& path, const std::string& data, int mode) {
  const std::string dir = parent_of(path);
  const std::string base = path.substr(path.find_last_of('/') + 1);
  if (base.empty()) {
    return make_error(Errc::invalid_argument, "no file name in \"" + path + "\"");
  }
  // Hidden and unique: readers never see a half-written file under the final name.
  std::string tmp = (dir == "/" ? "" : dir) + "/." + base + ".tmp-XXXXXX";
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return io_error("create temporary file in " + dir, errno);
  }
  FdCloser closer(fd);
  auto fail = [&tmp](Error error) -> Result<void> {
    ::unlink(tmp.c_str());
    return error;
  };
  // fchmod, not the umask-filtered creation mode, so the result is exactly |mode|.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    return fail(io_error("chmod " + tmp, errno));
  }
  if (auto written = write_all(fd, data, tmp); !written) {
    return fail(written.error());
  }
  if (::fsync(fd) != 0) {
    return fail(io_error("fsync " + tmp, errno));
  }
  if (::close(closer.release()) != 0) {
    return fail(io_error("close " + tmp, errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(io_error("rename to " + path, errno));
  }
  return fsync_dir(dir);
}

}  // namespace fd::acme
