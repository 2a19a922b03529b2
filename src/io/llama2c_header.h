// The torch-free half of the llama2.c reader (io/llama2c_checkpoint.h): the header
// and the size it implies, checked from the file's bytes alone. Uses only the standard
// library and util/error.h, so the libFuzzer target (tests/fuzz/fuzz_llama2c_header.cpp)
// compiles it without LibTorch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lawcat::io {

struct Llama2cHeader {
  int version = 0;  // 0 = legacy, 1 = "ak42" v1
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
          seq_len = 0;
  bool shared_classifier = true;
  int64_t head_size() const { return n_heads ? dim / n_heads : 0; }
};

struct Llama2cLayout {
  Llama2cHeader header;
  size_t data_offset = 0;  // first float (28 legacy, 256 v1)
  uint64_t file_bytes = 0; // the size the header implies (== the file's size when accepted)
};

// Parses and validates the header of a `size`-byte llama2.c file at `p` and checks the
// size it implies (CheckpointError naming `where`: truncated, trailing data, values out
// of [1, 2^20], dim / n_heads / n_kv_heads not divisible, odd head size, unknown version).
Llama2cLayout parse_llama2c_layout(const uint8_t* p, size_t size, const std::string& where);

}  // namespace lawcat::io
