// util/fs: atomic writes leave the old file intact on failure; mmap reads what was written.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "common/catch.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;

TEST_CASE("atomic_write replaces the file and leaves no temp files", "[util]") {
  auto dir = test::scratch_dir("fs_atomic");
  auto p = dir / "a.txt";
  fs::atomic_write_text(p, "first");
  fs::atomic_write_text(p, "second");
  CHECK(fs::read_text(p) == "second");
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) { (void)e; ++n; }
  CHECK(n == 1);
}

TEST_CASE("read_text names a directory given as a file", "[util]") {
  auto error_of = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  auto dir = test::scratch_dir("fs_read_dir");
  CHECK_THAT(error_of([&] { fs::read_text(dir); }), LAWCAT_CONTAINS(dir.string() + ": is a directory, not a file"));
  CHECK_THAT(error_of([&] { fs::read_text(dir / "missing.yaml"); }), LAWCAT_CONTAINS("missing.yaml: cannot open"));
}

TEST_CASE("atomic_write failure keeps the previous content", "[util]") {
  auto dir = test::scratch_dir("fs_atomic_fail");
  auto p = dir / "b.txt";
  fs::atomic_write_text(p, "keep me");
  CHECK_THROWS_AS(fs::atomic_write(p, [](std::FILE*) { throw Error("simulated disk full"); }), Error);
  CHECK(fs::read_text(p) == "keep me");
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) { (void)e; ++n; }
  CHECK(n == 1);
}

TEST_CASE("MappedFile maps file content; missing file names the path", "[util]") {
  auto dir = test::scratch_dir("fs_mmap");
  fs::atomic_write_text(dir / "c.bin", std::string("abc\0def", 7));
  fs::MappedFile m(dir / "c.bin");
  REQUIRE(m.size() == 7);
  CHECK(std::string(reinterpret_cast<const char*>(m.data()), 7) == std::string("abc\0def", 7));
  try {
    fs::MappedFile missing(dir / "nope.bin");
    FAIL("expected an error");
  } catch (const CheckpointError& e) {
    CHECK(std::string(e.what()).find("nope.bin") != std::string::npos);
  }
}

TEST_CASE("nested errors print their whole chain", "[util]") {
  try {
    with_context("while loading /x", [] { throw CheckpointError("tensor w: bad shape"); return 0; });
    FAIL("expected an error");
  } catch (const std::exception& e) {
    CHECK(describe_exception(e) == "while loading /x: tensor w: bad shape");
  }
}

// Issue 17, case 1: two processes in one output_dir. The lock is exclusive across
// processes, names the holder's PID, and dies with its holder (kill -9 leaves no stale lock).
TEST_CASE("DirLock: a second holder is refused with the PID; released on destruction", "[util]") {
  auto dir = test::scratch_dir("dirlock") / "run";
  {
    fs::DirLock first(dir);
    CHECK(std::filesystem::exists(dir / ".lock"));
    CHECK(fs::read_text(dir / ".lock") == std::to_string(::getpid()) + "\n");
    try {
      fs::DirLock second(dir);
      FAIL("expected the second lock to be refused");
    } catch (const Error& e) {
      CHECK_THAT(e.what(), LAWCAT_CONTAINS(dir.string() + " is in use by PID " + std::to_string(::getpid())));
    }
  }
  fs::DirLock again(dir);  // released with the first holder
  CHECK(again.dir() == dir);
}

TEST_CASE("DirLock: a process killed with SIGKILL leaves no stale lock", "[util]") {
  auto dir = test::scratch_dir("dirlock_kill") / "run";
  std::filesystem::create_directories(dir);  // so the forked child allocates as little as possible
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ready[0]);
    try {
      fs::DirLock held(dir);
      const char c = 'x';
      if (::write(ready[1], &c, 1) != 1) ::_exit(2);
      for (;;) ::pause();
    } catch (...) {
      ::_exit(3);
    }
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  try {
    fs::DirLock mine(dir);
    FAIL("expected the lock to be held by the child");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), LAWCAT_CONTAINS("in use by PID " + std::to_string(child)));
  }
  ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  fs::DirLock mine(dir);  // the kernel released the dead child's lock
  CHECK(fs::read_text(dir / ".lock") == std::to_string(::getpid()) + "\n");
}

TEST_CASE("replace_dir swaps a complete directory in; the old one is gone", "[util]") {
  auto root = test::scratch_dir("replace_dir");
  fs::atomic_write_text(root / "target" / "a.txt", "old");
  fs::atomic_write_text(root / "staged" / "a.txt", "new");
  fs::replace_dir(root / "staged", root / "target");
  CHECK(fs::read_text(root / "target" / "a.txt") == "new");
  CHECK_FALSE(std::filesystem::exists(root / "staged"));
  fs::atomic_write_text(root / "staged2" / "b.txt", "fresh");
  fs::replace_dir(root / "staged2", root / "fresh_target");  // no target yet
  CHECK(fs::read_text(root / "fresh_target" / "b.txt") == "fresh");
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(root)) { (void)e; ++n; }
  CHECK(n == 2);
}
