#include "acme/storage.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/file.h"

namespace fd::acme {
namespace {

using namespace std::chrono_literals;

const std::string PEBBLE_URL = "https://127.0.0.1:14000/dir";
const std::string PEBBLE_CA = "127.0.0.1_14000_dir";

int mode_of(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return -1;
  }
  return static_cast<int>(st.st_mode & 07777);
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

// Every path below |root|, relative to it.
std::set<std::string> tree(const std::string& root) {
  std::set<std::string> paths;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    paths.insert(std::filesystem::relative(entry.path(), root).string());
  }
  return paths;
}

// True when an exclusive flock on |path| is held by another open file description.
bool locked_elsewhere(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << path << ": " << std::strerror(errno);
    return false;
  }
  const bool busy = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return busy;
}

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "fd-storage-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    dir_ = base_ + "/state";
  }
  void TearDown() override { std::filesystem::remove_all(base_); }

  Storage prepared(const std::string& url = PEBBLE_URL) {
    Storage storage(dir_, url);
    auto ready = storage.prepare();
    EXPECT_TRUE(ready) << ready.error().message;
    return storage;
  }

  std::string base_;
  std::string dir_;
};

TEST_F(StorageTest, PrepareCreatesTheLayoutWithOwnerOnlyDirectories) {
  const mode_t old_umask = ::umask(0);  // 0700 must not depend on the umask
  Storage storage(dir_ + "/", PEBBLE_URL);
  auto ready = storage.prepare();
  ::umask(old_umask);
  ASSERT_TRUE(ready) << ready.error().message;
  for (const std::string& path :
       {dir_, dir_ + "/accounts", dir_ + "/accounts/" + PEBBLE_CA, dir_ + "/certificates",
        dir_ + "/certificates/" + PEBBLE_CA, dir_ + "/locks"}) {
    EXPECT_TRUE(is_dir(path)) << path;
    EXPECT_EQ(mode_of(path), 0700) << path;
  }
  EXPECT_EQ(entries(dir_), (std::set<std::string>{"accounts", "certificates", "locks"}));
}

TEST_F(StorageTest, PrepareIsIdempotentAndCreatesMissingParents) {
  dir_ = base_ + "/a/b/state";
  Storage storage(dir_, PEBBLE_URL);
  ASSERT_TRUE(storage.prepare());
  ASSERT_TRUE(storage.write_account_url("https://x/acct/1"));
  ASSERT_TRUE(storage.prepare());
  EXPECT_EQ(*storage.read_account_url(), "https://x/acct/1");
  EXPECT_EQ(mode_of(base_ + "/a"), 0700);
}

TEST_F(StorageTest, PrepareFailsWhenTheDirectoryIsAFile) {
  ASSERT_TRUE(Storage::write_atomic(dir_, "x", 0600));
  Storage storage(dir_, PEBBLE_URL);
  auto ready = storage.prepare();
  ASSERT_FALSE(ready);
  EXPECT_EQ(ready.error().code, Errc::io);
  EXPECT_NE(ready.error().message.find("not a directory"), std::string::npos);
}

TEST_F(StorageTest, PrepareRejectsAnEmptyDirectory) {
  Storage storage("", PEBBLE_URL);
  auto ready = storage.prepare();
  ASSERT_FALSE(ready);
  EXPECT_EQ(ready.error().code, Errc::invalid_argument);
}

TEST_F(StorageTest, CaFolderNamesComeFromTheDirectoryUrl) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"https://127.0.0.1:14000/dir", "127.0.0.1_14000_dir"},
      {"https://acme-v02.api.letsencrypt.org/directory", "acme-v02.api.letsencrypt.org_directory"},
      {"https://ACME.Example.COM/Dir/", "acme.example.com_Dir"},
      {"https://[::1]:14000/dir?x=1#y", "___1__14000_dir"},
      {"https://ca.test/a b/../c", "ca.test_a_b_.._c"},
      {"..", "_.."},
      {"https://", "_"},
  };
  for (const auto& [url, folder] : cases) {
    Storage storage(dir_, url);
    ASSERT_TRUE(storage.prepare()) << url;
    EXPECT_TRUE(is_dir(dir_ + "/accounts/" + folder)) << url << " -> " << folder;
    EXPECT_TRUE(is_dir(dir_ + "/certificates/" + folder)) << url << " -> " << folder;
  }
  // Nothing escaped: only folders named above exist beside the three top-level ones.
  EXPECT_EQ(entries(dir_), (std::set<std::string>{"accounts", "certificates", "locks"}));
  EXPECT_EQ(entries(dir_ + "/accounts").size(), cases.size());
}

TEST_F(StorageTest, VeryLongDirectoryUrlsGetAShortenedStableFolder) {
  const std::string url = "https://ca.test/" + std::string(400, 'p');
  Storage first(dir_, url);
  ASSERT_TRUE(first.prepare());
  ASSERT_TRUE(first.write_account_url("https://ca.test/acct/1"));
  const auto folders = entries(dir_ + "/accounts");
  ASSERT_EQ(folders.size(), 1u);
  EXPECT_LE(folders.begin()->size(), 120u);
  Storage second(dir_, url);
  EXPECT_EQ(*second.read_account_url(), "https://ca.test/acct/1");
  Storage other(dir_, url + "q");
  ASSERT_TRUE(other.prepare());
  EXPECT_EQ(entries(dir_ + "/accounts").size(), 2u);
  auto lock = second.lock(std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                          std::string(63, 'c') + "." + std::string(61, 'd'));
  ASSERT_TRUE(lock) << lock.error().message;
}

TEST_F(StorageTest, AccountKeyRoundTrip) {
  Storage storage = prepared();
  auto missing = storage.read_account_key();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::io);
  EXPECT_NE(missing.error().message.find("not found"), std::string::npos);

  const std::string pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  ASSERT_TRUE(storage.write_account_key(pem));
  EXPECT_EQ(*storage.read_account_key(), pem);
  const std::string path = dir_ + "/accounts/" + PEBBLE_CA + "/account.key";
  EXPECT_EQ(*read_file(path), pem);
  EXPECT_EQ(mode_of(path), 0600);

  ASSERT_TRUE(storage.write_account_key("replaced"));
  EXPECT_EQ(*storage.read_account_key(), "replaced");
}

TEST_F(StorageTest, AccountUrlRoundTripAsJson) {
  Storage storage = prepared();
  auto missing = storage.read_account_url();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::io);
  EXPECT_NE(missing.error().message.find("not found"), std::string::npos);

  const std::string url = "https://127.0.0.1:14000/my-account/3";
  ASSERT_TRUE(storage.write_account_url(url));
  EXPECT_EQ(*storage.read_account_url(), url);
  const std::string path = dir_ + "/accounts/" + PEBBLE_CA + "/account.json";
  EXPECT_EQ(*read_file(path), "{\"url\":\"https://127.0.0.1:14000/my-account/3\"}\n");
}

TEST_F(StorageTest, CorruptAccountJsonIsAnError) {
  Storage storage = prepared();
  const std::string path = dir_ + "/accounts/" + PEBBLE_CA + "/account.json";
  for (const char* text : {"", "{", "[]", "{\"url\": 3}", "{\"other\": \"x\"}"}) {
    ASSERT_TRUE(Storage::write_atomic(path, text, 0600));
    auto url = storage.read_account_url();
    ASSERT_FALSE(url) << text;
    EXPECT_EQ(url.error().code, Errc::io) << text;
  }
}

TEST_F(StorageTest, AccountsAreKeptPerCa) {
  Storage pebble = prepared();
  Storage other = prepared("https://acme.example/directory");
  ASSERT_TRUE(pebble.write_account_url("https://127.0.0.1:14000/my-account/1"));
  EXPECT_FALSE(other.read_account_url());
  ASSERT_TRUE(other.write_account_url("https://acme.example/acct/9"));
  EXPECT_EQ(*pebble.read_account_url(), "https://127.0.0.1:14000/my-account/1");
  EXPECT_EQ(*other.read_account_url(), "https://acme.example/acct/9");
}

TEST_F(StorageTest, CertificateRoundTrip) {
  Storage storage = prepared();
  auto missing = storage.read_chain("example.com");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::io);
  EXPECT_NE(missing.error().message.find("not found"), std::string::npos);
  EXPECT_FALSE(storage.read_key("example.com"));

  ASSERT_TRUE(storage.write_certificate("example.com", "CHAIN-1", "KEY-1"));
  EXPECT_EQ(*storage.read_chain("example.com"), "CHAIN-1");
  EXPECT_EQ(*storage.read_key("example.com"), "KEY-1");
  const std::string folder = dir_ + "/certificates/" + PEBBLE_CA + "/example.com";
  EXPECT_EQ(mode_of(folder), 0700);
  EXPECT_EQ(mode_of(folder + "/key.pem"), 0600);
  EXPECT_EQ(entries(folder), (std::set<std::string>{"chain.pem", "key.pem"}));

  ASSERT_TRUE(storage.write_certificate("example.com", "CHAIN-2", "KEY-2"));
  EXPECT_EQ(*storage.read_chain("example.com"), "CHAIN-2");
  EXPECT_EQ(*storage.read_key("example.com"), "KEY-2");

  // Another replica sees the same files.
  Storage replica(dir_, PEBBLE_URL);
  EXPECT_EQ(*replica.read_chain("example.com"), "CHAIN-2");
}

TEST_F(StorageTest, AcceptsOrdinaryNames) {
  Storage storage = prepared();
  const std::vector<std::string> names = {
      "localhost", "a.b", "xn--bcher-kva.example",      "www-1.frontdoor.test",
      "127.0.0.1", "0",   std::string(63, 'a') + ".com"};
  for (const std::string& name : names) {
    EXPECT_TRUE(storage.write_certificate(name, "C", "K")) << name;
    EXPECT_TRUE(storage.read_chain(name)) << name;
    EXPECT_TRUE(storage.lock(name)) << name;
  }
}

TEST_F(StorageTest, RejectsNamesThatCouldEscapeOrAreNotDnsNames) {
  Storage storage = prepared();
  const auto before = tree(base_);
  const std::vector<std::string> bad = {
      "",
      ".",
      "..",
      "../x",
      "../../etc",
      "a/b",
      "/etc",
      "a..b",
      ".hidden",
      "trailing.",
      "Example.com",
      "*.example.com",
      "a b",
      "a\\b",
      "a:b",
      "a_b",
      std::string("a\0b", 3),
      "a\nb",
      "-x.com",
      "x-.com",
      "caf\xc3\xa9.example",
      std::string(64, 'a') + ".com",
      std::string(250, 'a') + ".com",
  };
  for (const std::string& name : bad) {
    auto write = storage.write_certificate(name, "C", "K");
    ASSERT_FALSE(write) << name;
    EXPECT_EQ(write.error().code, Errc::invalid_argument) << name;
    auto chain = storage.read_chain(name);
    ASSERT_FALSE(chain) << name;
    EXPECT_EQ(chain.error().code, Errc::invalid_argument) << name;
    auto key = storage.read_key(name);
    ASSERT_FALSE(key) << name;
    EXPECT_EQ(key.error().code, Errc::invalid_argument) << name;
    auto lock = storage.lock(name);
    ASSERT_FALSE(lock) << name;
    EXPECT_EQ(lock.error().code, Errc::invalid_argument) << name;
  }
  EXPECT_EQ(tree(base_), before);
}

TEST_F(StorageTest, WriteAtomicReplacesTheFileWithExactMode) {
  const std::string path = base_ + "/file";
  const mode_t old_umask = ::umask(0077);
  auto first = Storage::write_atomic(path, "one", 0644);
  ::umask(old_umask);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*read_file(path), "one");
  EXPECT_EQ(mode_of(path), 0644);

  struct stat before;
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  const std::string big(1 << 20, 'x');
  ASSERT_TRUE(Storage::write_atomic(path, big, 0600));
  EXPECT_EQ(*read_file(path), big);
  EXPECT_EQ(mode_of(path), 0600);
  struct stat after;
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino);  // a new file renamed over, not rewritten in place

  ASSERT_TRUE(Storage::write_atomic(path, "", 0600));
  EXPECT_EQ(*read_file(path), "");
  // No temporary file is left behind.
  EXPECT_EQ(entries(base_), (std::set<std::string>{"file"}));
}

TEST_F(StorageTest, WriteAtomicKeepsTheOldFileWhenOpenReadersHoldIt) {
  const std::string path = base_ + "/file";
  ASSERT_TRUE(Storage::write_atomic(path, "old", 0600));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(Storage::write_atomic(path, "new", 0600));
  char buf[8] = {};
  EXPECT_EQ(::read(fd, buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "old");
  ::close(fd);
  EXPECT_EQ(*read_file(path), "new");
}

TEST_F(StorageTest, WriteAtomicFailsCleanly) {
  auto missing_dir = Storage::write_atomic(base_ + "/no/such/file", "x", 0600);
  ASSERT_FALSE(missing_dir);
  EXPECT_EQ(missing_dir.error().code, Errc::io);

  // The target is a directory: rename fails and the temporary file is removed.
  ASSERT_EQ(::mkdir((base_ + "/target").c_str(), 0700), 0);
  auto onto_dir = Storage::write_atomic(base_ + "/target", "x", 0600);
  ASSERT_FALSE(onto_dir);
  EXPECT_EQ(onto_dir.error().code, Errc::io);
  EXPECT_EQ(entries(base_), (std::set<std::string>{"target"}));

  auto no_name = Storage::write_atomic(base_ + "/", "x", 0600);
  ASSERT_FALSE(no_name);
  EXPECT_EQ(entries(base_), (std::set<std::string>{"target"}));
}

TEST_F(StorageTest, LockIsExclusiveUntilDestroyed) {
  Storage storage = prepared();
  const std::string path = dir_ + "/locks/" + PEBBLE_CA + "-example.com.lock";
  {
    auto lock = storage.lock("example.com");
    ASSERT_TRUE(lock) << lock.error().message;
    EXPECT_EQ(mode_of(path), 0600);
    EXPECT_TRUE(locked_elsewhere(path));
    // Other names are independent.
    auto other = storage.lock("other.example.com");
    ASSERT_TRUE(other);
  }
  EXPECT_FALSE(locked_elsewhere(path));
}

TEST_F(StorageTest, LockMoveTransfersOwnership) {
  Storage storage = prepared();
  const std::string path = dir_ + "/locks/" + PEBBLE_CA + "-example.com.lock";
  auto result = storage.lock("example.com");
  ASSERT_TRUE(result);
  {
    Storage::Lock moved(std::move(result).value());
    EXPECT_TRUE(locked_elsewhere(path));
    {
      Storage::Lock again(std::move(moved));
      EXPECT_TRUE(locked_elsewhere(path));
    }
    EXPECT_FALSE(locked_elsewhere(path));
  }
  EXPECT_FALSE(locked_elsewhere(path));
}

TEST_F(StorageTest, SecondLockBlocksUntilTheFirstIsReleased) {
  Storage storage = prepared();
  Storage replica(dir_, PEBBLE_URL);
  auto first = std::make_unique<Result<Storage::Lock>>(storage.lock("example.com"));
  ASSERT_TRUE(*first);
  std::atomic<bool> taken{false};
  std::thread waiter([&] {
    auto second = replica.lock("example.com");
    EXPECT_TRUE(second);
    taken = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(taken.load());
  first.reset();
  waiter.join();
  EXPECT_TRUE(taken.load());
}

TEST_F(StorageTest, LocksExcludeOtherProcesses) {
  Storage storage = prepared();
  auto lock = storage.lock("example.com");
  ASSERT_TRUE(lock);
  const std::string path = dir_ + "/locks/" + PEBBLE_CA + "-example.com.lock";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int fd = ::open(path.c_str(), O_RDWR);
    // Inherited descriptors share the parent's lock; a fresh open must not get it.
    const bool busy = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::_exit(busy ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace fd::acme

namespace fd::acme {
namespace {

class StorageSharingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "fd-storage-share-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(StorageSharingTest, WaitingForALockGivesUpOnRequest) {
  Storage a(dir_, "https://ca.test/dir");
  Storage b(dir_, "https://ca.test/dir");
  ASSERT_TRUE(a.prepare());
  auto held = a.lock("example.com");
  ASSERT_TRUE(held);
  int asked = 0;
  auto waited = b.lock("example.com", [&] { return ++asked >= 3; });
  ASSERT_FALSE(waited);
  EXPECT_NE(waited.error().message.find("abandoned"), std::string::npos);
  EXPECT_EQ(asked, 3);
}

TEST_F(StorageSharingTest, ChallengesAreSharedBetweenInstances) {
  Storage a(dir_, "https://ca.test/dir");
  Storage b(dir_, "https://ca.test/dir");
  ASSERT_TRUE(a.prepare());
  ASSERT_TRUE(a.write_challenge("tok-EN_1", "tok-EN_1.thumb"));
  auto read = b.read_challenge("tok-EN_1");
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, "tok-EN_1.thumb");
  a.remove_challenge("tok-EN_1");
  EXPECT_FALSE(b.read_challenge("tok-EN_1"));
  EXPECT_FALSE(a.write_challenge("../escape", "x"));
  EXPECT_FALSE(b.read_challenge("a/b"));
}

}  // namespace
}  // namespace fd::acme
