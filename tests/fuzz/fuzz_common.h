// Shared by the libFuzzer targets in tests/fuzz/ (built by scripts/fuzz.sh with clang,
// -fsanitize=fuzzer,address,undefined, outside the LibTorch build).
//
// The property every target checks: a parser given any bytes either succeeds or throws a
// lawcat::Error (ConfigError, CheckpointError, DataError: a message for the user). A crash,
// a sanitizer report, a hang, a leak or any other exception (a bare nlohmann::json or
// std::out_of_range error, std::bad_alloc from an absurd size) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace lawcat::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz: %s\n", what.c_str());
  std::abort();
}

// Runs fn(); a lawcat::Error is a proper rejection, anything else aborts (a finding).
template <typename Fn>
void expect_only_lawcat_errors(Fn&& fn) {
  try {
    fn();
  } catch (const lawcat::Error&) {
  } catch (const std::exception& e) {
    fail(std::string("escaped a non-lawcat exception: ") + e.what());
  }
}

// A scratch folder for this process (parsers that only read files get their input there).
// In memory (/dev/shm, a tmpfs) where there is one: writing each input to a disk-backed /tmp
// costs milliseconds (measured: babi 281 exec/s on ext4 /tmp, 8.7K on /dev/shm) and tests
// nothing more. LAWCAT_FUZZ_SCRATCH overrides; else the system temp directory.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path base;
    std::error_code ec;
    if (const char* s = std::getenv("LAWCAT_FUZZ_SCRATCH"); s && *s) base = s;
    else if (::access("/dev/shm", W_OK | X_OK) == 0 && std::filesystem::is_directory("/dev/shm", ec)) base = "/dev/shm";
    else base = std::filesystem::temp_directory_path();
    static std::filesystem::path d = base / ("lawcat_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec2;
      std::filesystem::remove_all(d, ec2);
    });
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_file(const std::string& name, std::string_view bytes) {
  const auto p = scratch() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

// Splits the input on `sep` (e.g. a file and its overrides).
inline std::vector<std::string> split(std::string_view s, std::string_view sep) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = s.find(sep, b)) != std::string_view::npos; b = e + sep.size()) out.emplace_back(s.substr(b, e - b));
  out.emplace_back(s.substr(b));
  return out;
}

}  // namespace lawcat::fuzz
