// Test runner shared by every test executable: fixed thread count and seed,
// then Catch2's own session (v2 or v3).
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#define CATCH_CONFIG_RUNNER  // v2: this translation unit owns Catch's runner
#include <catch2/catch.hpp>
#endif
#include "common/catch.h"
#include "util/fs.h"
#include <thread>
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ftw.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#if defined(LAWCAT_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace lawcat::test {
static std::string scratch_root() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/lawcat_test_" + std::to_string(::getpid());
}
std::filesystem::path shared_data() {
  if (const char* env = std::getenv("LAWCAT_SHARED_DATA")) {
    return std::filesystem::exists(env) ? std::filesystem::path(env) : std::filesystem::path();
  }
  auto p = std::filesystem::path(LAWCAT_SOURCE_DIR) / ".." / "shared" / "data";
  return std::filesystem::exists(p) ? std::filesystem::canonical(p) : std::filesystem::path();
}
std::filesystem::path scratch_dir(const std::string& name) {
  auto p = std::filesystem::path(scratch_root()) / name;
  lawcat::fs::remove_tree(p);  // not std::filesystem's: see util/fs.h
  std::filesystem::create_directories(p);
  return p;
}
bool have_cuda() {
#if defined(LAWCAT_HAVE_CUDA)
  return at::hasCUDA();
#else
  return false;
#endif
}
}  // namespace lawcat::test

int main(int argc, char** argv) {
  // LibTorch defaults to one thread on small machines; tests use all cores.
  unsigned n = std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(n));
  at::manual_seed(1234);
  int rc = Catch::Session().run(argc, argv);
  // Scratch cleanup with nftw rather than std::filesystem::remove_all: the torch
  // wheel's libtorch exports its own std::filesystem symbols (see CONTRIBUTING).
  std::string scratch = lawcat::test::scratch_root();
  ::nftw(scratch.c_str(), [](const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); },
         16, FTW_DEPTH | FTW_PHYS);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  // Skip static destructors of the CUDA/LibTorch runtime at exit (a crash there on
  // the GPU machine would turn a passing run into a failure).
  std::_Exit(rc);
}
