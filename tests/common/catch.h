// Catch2 v2 (single header, Debian 12) or v3 (split headers, Ubuntu 24.04).
#pragma once
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#define LAWCAT_CATCH3 1
using Catch::Approx;  // v2 exports Approx at global scope
#else
#include <catch2/catch.hpp>
#endif
#include <cstdlib>
#include <filesystem>
#include <string>

namespace lawcat::test {
// ../shared/data beside the checkout (or $LAWCAT_SHARED_DATA); empty when absent.
std::filesystem::path shared_data();
// Directory for scratch files of this test run (unique per process).
std::filesystem::path scratch_dir(const std::string& name);
bool have_cuda();
}  // namespace lawcat::test

// Substring matcher for CHECK_THROWS_WITH / REQUIRE_THAT (named differently in v2 and v3).
#ifdef LAWCAT_CATCH3
#define LAWCAT_CONTAINS(s) Catch::Matchers::ContainsSubstring(s)
#else
#define LAWCAT_CONTAINS(s) Catch::Contains(s)
#endif

// Skip the rest of a test case with a message (Catch2 v3 SKIP, v2 WARN + return).
#ifdef LAWCAT_CATCH3
#define LAWCAT_SKIP(msg) SKIP(msg)
#else
#define LAWCAT_SKIP(msg) do { WARN("SKIPPED: " << msg); return; } while (0)
#endif

// Path to a file under ../shared/data, or skip the test case when the folder is absent.
#define LAWCAT_SHARED_OR_SKIP(var, rel)                                                     \
  auto var = ::lawcat::test::shared_data();                                                \
  if (var.empty()) LAWCAT_SKIP("../shared/data not found (set LAWCAT_SHARED_DATA)");      \
  var /= (rel);                                                                            \
  if (!std::filesystem::exists(var)) LAWCAT_SKIP("missing shared data file " << var.string())

#define LAWCAT_REQUIRE_CUDA_OR_SKIP() \
  if (!::lawcat::test::have_cuda()) LAWCAT_SKIP("no CUDA device: GPU test skipped")
