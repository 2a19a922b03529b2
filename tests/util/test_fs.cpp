// util/fs: atomic writes leave the old file intact on failure; mmap reads what was written.
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
