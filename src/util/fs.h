// File helpers: atomic writes (temp file + fsync + rename) and read-only mmap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <system_error>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace lawcat::fs {

// Writes `path` atomically: `write` fills a temp file beside it (same folder),
// which is flushed, fsync'ed and renamed over `path`. On any error (disk full,
// permission) the temp file is removed, `path` is left as it was, and a
// lawcat::Error naming the file is thrown.
void atomic_write(const std::filesystem::path& path,
                  const std::function<void(std::FILE*)>& write);
void atomic_write_text(const std::filesystem::path& path, std::string_view text);

// Whole file as a string (throws DataError naming the file).
std::string read_text(const std::filesystem::path& path);

// A read-only memory map of a whole file; zero-length files map to an empty span.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// An exclusive lock on a folder for the lifetime of the object: flock(2) on
// <dir>/.lock (created with the folder when missing), with this process's PID
// written into the file. The kernel drops the lock when the process exits, even
// by kill -9, so a crash never leaves a stale lock behind. A second holder, in
// this or another process, gets Error "<dir> is in use by PID n".
class DirLock {
 public:
  explicit DirLock(const std::filesystem::path& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  int fd_ = -1;
};

// Moves the complete directory `staged` to `target`, replacing what is there:
// renameat2(RENAME_EXCHANGE) swaps the two atomically where the file system
// supports it, else the old `target` is renamed aside, `staged` renamed in, and
// the old one removed. Either way `target` is at every moment the old or the new
// directory, never a mix or nothing.
void replace_dir(const std::filesystem::path& staged, const std::filesystem::path& target);

// fsync a directory so a rename inside it is durable.
void sync_dir(const std::filesystem::path& dir);

// std::filesystem::remove_all without std::filesystem's implementation (nftw + remove):
// the torch wheel's libtorch.so exports its own copy of std::filesystem, and where the
// toolchain links libstdc++ statically (the GPU machine's /opt/gcc g++) the executable's
// calls bind to that copy, whose remove_all jumps to a null pointer (SIGSEGV in test_io
// and test_train there). Returns the number of entries removed; a missing path is 0 and
// no error. The second form throws std::system_error naming the path.
std::uintmax_t remove_tree(const std::filesystem::path& path, std::error_code& ec) noexcept;
std::uintmax_t remove_tree(const std::filesystem::path& path);

}  // namespace lawcat::fs
