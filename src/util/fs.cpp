#include "util/fs.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "util/error.h"

namespace lawcat::fs {
namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

void sync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

DirLock::DirLock(const std::filesystem::path& dir) : dir_(dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  LAWCAT_CHECK(!ec, Error, dir.string() << ": cannot create the folder: " << ec.message());
  const std::filesystem::path file = dir / ".lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  LAWCAT_CHECK(fd_ >= 0, Error, file.string() << ": cannot open the lock file: " << errno_text());
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    // The holder writes its PID right after locking: give it a moment to do so.
    std::string pid;
    for (int attempt = 0; attempt < 20 && pid.empty(); ++attempt) {
      char buf[32] = {};
      const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      if (n > 0) pid.assign(buf, static_cast<size_t>(n));
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      if (pid.empty()) ::usleep(10000);
    }
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(dir.string() + " is in use by PID " + (pid.empty() ? std::string("?") : pid) +
                  " (another lawcat process holds " + file.string() +
                  "); wait for it to finish or use another folder");
    throw Error(file.string() + ": cannot lock: " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    /* best effort: the lock holds without the PID */
  }
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  if (::ftruncate(fd_, 0) != 0) { /* best effort: the next holder rewrites it */ }
  ::close(fd_);  // releases the flock
}

void replace_dir(const std::filesystem::path& staged, const std::filesystem::path& target) {
  const std::filesystem::path parent = target.parent_path();
  std::error_code ec;
  if (!std::filesystem::exists(target, ec)) {
    std::filesystem::rename(staged, target);
    sync_dir(parent);
    return;
  }
  if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
    sync_dir(parent);
    remove_tree(staged, ec);  // now holds the old one
    return;
  }
  const std::filesystem::path old =
      parent / (".old-" + target.filename().string() + "-" + std::to_string(::getpid()));
  remove_tree(old, ec);
  std::filesystem::rename(target, old);
  try {
    std::filesystem::rename(staged, target);
  } catch (...) {
    std::filesystem::rename(old, target, ec);  // put the old one back
    throw;
  }
  sync_dir(parent);
  remove_tree(old, ec);
}

void atomic_write(const std::filesystem::path& path, const std::function<void(std::FILE*)>& write) {
  auto dir = path.parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
  std::string tmpl = (dir.empty() ? std::string(".") : dir.string()) + "/." +
                     path.filename().string() + ".tmp.XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  LAWCAT_CHECK(fd >= 0, Error, path.string() << ": cannot create temporary file: " << errno_text());
  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    throw Error(path.string() + ": fdopen failed: " + errno_text());
  }
  try {
    write(f);
    if (std::fflush(f) != 0 || std::ferror(f)) throw Error("write failed: " + errno_text());
    if (::fsync(fd) != 0) throw Error("fsync failed: " + errno_text());
  } catch (const std::exception& e) {
    std::fclose(f);
    ::unlink(tmpl.c_str());
    throw Error(path.string() + ": " + e.what() + " (nothing was replaced)");
  }
  if (std::fclose(f) != 0) {
    ::unlink(tmpl.c_str());
    throw Error(path.string() + ": close failed: " + errno_text() + " (nothing was replaced)");
  }
  if (::chmod(tmpl.c_str(), 0644) != 0) { /* best effort: mkstemp makes 0600 */ }
  if (std::rename(tmpl.c_str(), path.c_str()) != 0) {
    std::string err = errno_text();
    ::unlink(tmpl.c_str());
    throw Error(path.string() + ": rename failed: " + err + " (nothing was replaced)");
  }
  sync_dir(dir);
}

void atomic_write_text(const std::filesystem::path& path, std::string_view text) {
  atomic_write(path, [&](std::FILE* f) {
    if (!text.empty() && std::fwrite(text.data(), 1, text.size(), f) != text.size())
      throw Error("short write: " + errno_text());
  });
}

std::string read_text(const std::filesystem::path& path) {
  std::error_code ec;  // an ifstream opens a directory and reads it as empty
  LAWCAT_CHECK(!std::filesystem::is_directory(path, ec), DataError, path.string() << ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  LAWCAT_CHECK(in.good(), DataError, path.string() << ": cannot open: " << errno_text());
  std::ostringstream ss;
  ss << in.rdbuf();
  LAWCAT_CHECK(!in.bad(), DataError, path.string() << ": read error");
  return ss.str();
}

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  LAWCAT_CHECK(fd >= 0, CheckpointError, path.string() << ": cannot open: " << errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw CheckpointError(path.string() + ": cannot stat: " + errno_text());
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw CheckpointError(path.string() + ": mmap failed: " + errno_text());
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}
std::uintmax_t remove_tree(const std::filesystem::path& path, std::error_code& ec) noexcept {
  ec.clear();
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return 0;
    ec = std::error_code(errno, std::generic_category());
    return static_cast<std::uintmax_t>(-1);
  }
  static thread_local std::uintmax_t removed;
  static thread_local int failure;
  removed = 0;
  failure = 0;
  // Depth first (children before their folder), symbolic links removed, not followed.
  const int rc = ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        if (::remove(p) != 0) {
          failure = errno;
          return -1;
        }
        ++removed;
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) {
    ec = std::error_code(failure ? failure : errno, std::generic_category());
    return static_cast<std::uintmax_t>(-1);
  }
  return removed;
}

std::uintmax_t remove_tree(const std::filesystem::path& path) {
  std::error_code ec;
  const std::uintmax_t n = remove_tree(path, ec);
  if (ec) throw std::system_error(ec, "remove_tree " + path.string());
  return n;
}

}  // namespace lawcat::fs
