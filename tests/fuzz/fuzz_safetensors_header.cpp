// libFuzzer target for the safetensors header parser (io/safetensors_header.h).
// Built with clang by scripts/fuzz.sh, outside the LibTorch build:
//   clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     src/io/safetensors_header.cpp src/util/error.cpp tests/fuzz/fuzz_safetensors_header.cpp
//
// An input starting with '{' is a bare JSON header, checked against a data buffer
// as large as its largest end offset (so well-formed headers get past the size
// checks); anything else is a whole file image (length prefix, header, data).
// Properties: the parser only ever throws lawcat::CheckpointError (no crash, no
// UB, no other exception), and every accepted header survives
// build -> parse with the same tensors and metadata.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors_header.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::io;

namespace {

// Largest data buffer the round trip allocates (zeroed) to check a whole file image; a
// header claiming more is checked without it. Appending gigabytes for headers with huge
// offsets made this target run at ~1.9K exec/s.
constexpr uint64_t kMaxRoundTripData = 1 << 20;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors_header: %s\n", what);
  std::abort();
}

// Largest well-formed end offset in a header (0 when there is none).
uint64_t max_end(const char* json, size_t size) {
  auto j = nlohmann::json::parse(json, json + size, nullptr, /*allow_exceptions=*/false);
  uint64_t end = 0;
  if (!j.is_object()) return 0;
  for (const auto& [name, e] : j.items()) {
    if (!e.is_object()) continue;
    auto it = e.find("data_offsets");
    if (it == e.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_unsigned())
      continue;
    end = std::max(end, (*it)[1].get<uint64_t>());
  }
  return end;
}

// Re-serialise an accepted header with the writer's builder and parse it again.
void check_round_trip(const SafetensorsHeader& h) {
  std::vector<RawTensorToWrite> ts;
  for (const auto& [name, t] : h.tensors) ts.push_back({name, t.dtype, t.shape});
  std::vector<size_t> order;
  std::vector<uint64_t> offsets;
  std::string file;
  try {
    file = build_safetensors_header("rebuilt", ts, h.metadata, order, offsets);
  } catch (const CheckpointError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    fail("the builder rejected a header the parser accepted");
  }
  uint64_t total = 0;
  for (const auto& [name, t] : h.tensors) total += t.end - t.begin;
  SafetensorsHeader back;
  try {
    if (total <= kMaxRoundTripData) {
      // The whole file image: length prefix, header, a zeroed data buffer.
      file.append(total, '\0');
      back = parse_safetensors_file_bytes("rebuilt", reinterpret_cast<const uint8_t*>(file.data()),
                                          file.size());
    } else {
      // A large data buffer (a header may claim gigabytes): check the prefix as
      // parse_safetensors_file_bytes does and parse the header against a data buffer of
      // `total` bytes without allocating it (the same call parse_safetensors_file_bytes makes).
      if (file.size() < 8) fail("the builder wrote no length prefix");
      uint64_t n = 0;
      std::memcpy(&n, file.data(), 8);
      if (n != file.size() - 8 || n < 2 || file[8] != '{') fail("the builder's length prefix is wrong");
      back = parse_safetensors_header_json("rebuilt", file.data() + 8, n, total);
      back.data_start = 8 + n;
    }
  } catch (const CheckpointError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    fail("the parser rejected a header the builder wrote");
  }
  if (back.metadata != h.metadata) fail("metadata changed in the round trip");
  if (back.tensors.size() != h.tensors.size()) fail("tensor count changed in the round trip");
  if (back.data_start % 8 != 0) fail("the builder's data buffer is not 8-byte aligned");
  for (const auto& [name, t] : h.tensors) {
    auto it = back.tensors.find(name);
    if (it == back.tensors.end()) fail("a tensor disappeared in the round trip");
    const auto& b = it->second;
    if (b.dtype != t.dtype || b.shape != t.shape || b.end - b.begin != t.end - t.begin)
      fail("a tensor changed in the round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    SafetensorsHeader h;
    if (size > 0 && data[0] == '{') {
      const char* json = reinterpret_cast<const char*>(data);
      h = parse_safetensors_header_json("fuzz.safetensors", json, size, max_end(json, size));
    } else {
      h = parse_safetensors_file_bytes("fuzz.safetensors", data, size);
    }
    for (const auto& [name, t] : h.tensors) {
      if (t.begin > t.end || t.end > h.data_size) fail("accepted an out-of-range tensor");
    }
    check_round_trip(h);
  } catch (const CheckpointError&) {
    // rejected with a proper message: fine
  }
  // Any other exception escapes and libFuzzer reports it as a crash.
  return 0;
}
