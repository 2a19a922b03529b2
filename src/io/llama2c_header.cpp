#include "io/llama2c_header.h"

#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace lawcat::io {
namespace {
constexpr uint32_t kMagic = 0x616b3432;  // "ak42"
constexpr size_t kV1HeaderBytes = 256;

int32_t read_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
}  // namespace

Llama2cLayout parse_llama2c_layout(const uint8_t* p, size_t size, const std::string& where) {
  LAWCAT_CHECK(size >= 28, CheckpointError,
               where << ": truncated llama2.c header: expected at least 28 bytes, got " << size);
  Llama2cLayout out;
  Llama2cHeader& h = out.header;
  uint32_t magic;
  std::memcpy(&magic, p, 4);
  if (magic == kMagic) {
    LAWCAT_CHECK(size >= kV1HeaderBytes, CheckpointError,
                 where << ": truncated llama2.c v1 header: expected " << kV1HeaderBytes << " bytes, got " << size);
    h.version = read_i32(p + 4);
    LAWCAT_CHECK(h.version == 1, CheckpointError,
                 where << ": llama2.c export version " << h.version
                       << " is not supported (only the fp32 formats: legacy and version 1; "
                          "version 2 is Q8_0-quantized)");
    p += 8;
    out.data_offset = kV1HeaderBytes;
  } else {
    out.data_offset = 28;
  }
  h.dim = read_i32(p);
  h.hidden_dim = read_i32(p + 4);
  h.n_layers = read_i32(p + 8);
  h.n_heads = read_i32(p + 12);
  h.n_kv_heads = read_i32(p + 16);
  h.vocab_size = read_i32(p + 20);
  h.seq_len = read_i32(p + 24);
  if (h.version == 0) {
    h.shared_classifier = h.vocab_size > 0;
    // INT32_MIN has no absolute value; it fails the range check below either way.
    h.vocab_size = h.vocab_size == INT32_MIN ? 0 : std::abs(h.vocab_size);
  } else {
    h.shared_classifier = p[28] != 0;
  }

  // Header sanity (also catches a file that is not a llama2.c checkpoint at all).
  auto bad = [&](const std::string& what) {
    throw CheckpointError(where + ": not a valid llama2.c checkpoint: " + what +
                          " (header dim=" + std::to_string(h.dim) + " hidden_dim=" + std::to_string(h.hidden_dim) +
                          " n_layers=" + std::to_string(h.n_layers) + " n_heads=" + std::to_string(h.n_heads) +
                          " n_kv_heads=" + std::to_string(h.n_kv_heads) + " vocab_size=" +
                          std::to_string(h.vocab_size) + " seq_len=" + std::to_string(h.seq_len) + ")");
  };
  const int32_t limit = 1 << 20;
  for (int32_t v : {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len}) {
    if (v <= 0 || v > limit) bad("header values must be in [1, 2^20]");
  }
  if (h.dim % h.n_heads != 0) bad("dim must be a multiple of n_heads");
  if (h.n_heads % h.n_kv_heads != 0) bad("n_heads must be a multiple of n_kv_heads");
  if (h.head_size() % 2 != 0) bad("head size must be even");

  const int64_t D = h.dim, F = h.hidden_dim, L = h.n_layers, V = h.vocab_size, S = h.seq_len,
                hs = h.head_size(), KV = int64_t(h.n_kv_heads) * hs;
  // Guard the int64 arithmetic below against absurd headers.
  const double approx = double(V) * D * 2 + double(L) * D * (2.0 * D + 2.0 * KV + 3.0 * F) + double(S) * hs;
  if (approx > 1e15) bad("implausibly large model");
  int64_t floats = V * D + L * D * 2 + L * D * D * 2 + L * KV * D * 2 + L * F * D * 3 + D;
  if (h.version == 0) floats += S * hs;  // freq_cis real + imag, [S, hs/2] each
  if (!h.shared_classifier) floats += V * D;
  out.file_bytes = out.data_offset + static_cast<uint64_t>(floats) * 4;
  LAWCAT_CHECK(size >= out.file_bytes, CheckpointError,
               where << ": truncated llama2.c checkpoint: expected " << out.file_bytes << " bytes, got " << size);
  LAWCAT_CHECK(size == out.file_bytes, CheckpointError,
               where << ": llama2.c checkpoint size mismatch: expected " << out.file_bytes << " bytes, got " << size
                     << " (trailing data; is the header right?)");
  return out;
}

}  // namespace lawcat::io
