#include "proxy/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace fd::proxy {
namespace {

namespace fs = std::filesystem;

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Only CAP_NET_BIND_SERVICE, effective and permitted; nothing inheritable. glibc has no
// wrapper for capset, and libcap would be a dependency for this one call.
bool keep_only_bind_capability() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].effective = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
  data[CAP_TO_INDEX(CAP_NET_BIND_SERVICE)].permitted = CAP_TO_MASK(CAP_NET_BIND_SERVICE);
  return syscall(SYS_capset, &header, data) == 0;
}

Result<void> hand_over(const fs::path& dir, uid_t uid, gid_t gid) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return make_error(Errc::io, "cannot create " + dir.string() + ": " + ec.message());
  }
  std::vector<fs::path> paths{dir};
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    paths.push_back(it->path());
  }
  if (ec) {
    return make_error(Errc::io, "cannot read " + dir.string() + ": " + ec.message());
  }
  for (const auto& p : paths) {
    if (lchown(p.c_str(), uid, gid) != 0) {
      return make_error(Errc::io, errno_text(("chown " + p.string()).c_str()));
    }
  }
  if (chmod(dir.c_str(), 0700) != 0) {
    return make_error(Errc::io, errno_text(("chmod " + dir.string()).c_str()));
  }
  return {};
}

}  // namespace

Result<void> become_user(const std::string& user, const std::string& state_dir) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc = getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0 || found == nullptr) {
    return make_error(Errc::invalid_argument, "user " + user + " does not exist");
  }
  uid_t uid = entry.pw_uid;
  gid_t gid = entry.pw_gid;
  if (geteuid() != 0) {
    if (geteuid() == uid) {
      return {};
    }
    return make_error(Errc::invalid_argument,
                      "user: " + user + " needs frontdoor to start as root (or as " + user + ")");
  }
  if (!state_dir.empty()) {
    if (auto handed = hand_over(state_dir, uid, gid); !handed) {
      return handed;
    }
  }
  if (prctl(PR_SET_KEEPCAPS, 1) != 0 || initgroups(user.c_str(), gid) != 0 ||
      setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
    return make_error(Errc::internal, errno_text(("switching to user " + user).c_str()));
  }
  if (!keep_only_bind_capability() || prctl(PR_SET_KEEPCAPS, 0) != 0) {
    return make_error(Errc::internal, errno_text("capset"));
  }
  // The switch must be for good.
  if (setuid(0) == 0 || seteuid(0) == 0) {
    return make_error(Errc::internal, "root could be regained after switching to " + user);
  }
  return {};
}

}  // namespace fd::proxy
