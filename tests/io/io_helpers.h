// Shared helpers for tests/io: a tiny Llama-like state dict, raw file writers,
// bit-exact comparison, and "error message contains" checks.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "common/catch.h"
#include "common/python.h"
#include "util/error.h"

namespace lawcat::test {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// A 2-layer Llama-shaped state dict (hidden 16, 4 heads, 2 kv heads, vocab 40) in
// mixed dtypes, plus one tensor of every other storable dtype and the edge cases
// (0-d scalar, empty tensor, a non-contiguous view).
inline NamedTensors tiny_llama(uint64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto randn = [&](at::IntArrayRef s) { return at::randn(s, g, at::kFloat); };
  NamedTensors t;
  t.emplace_back("model.embed_tokens.weight", randn({40, 16}));
  for (int l = 0; l < 2; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    t.emplace_back(p + "input_layernorm.weight", randn({16}));
    t.emplace_back(p + "self_attn.q_proj.weight", randn({16, 16}).to(at::kBFloat16));
    t.emplace_back(p + "self_attn.k_proj.weight", randn({8, 16}).to(at::kBFloat16));
    t.emplace_back(p + "self_attn.v_proj.weight", randn({8, 16}).to(at::kHalf));
    t.emplace_back(p + "self_attn.o_proj.weight", randn({16, 16}));
    t.emplace_back(p + "post_attention_layernorm.weight", randn({16}).to(at::kBFloat16));
    t.emplace_back(p + "mlp.gate_proj.weight", randn({24, 16}).to(at::kHalf));
    t.emplace_back(p + "mlp.up_proj.weight", randn({24, 16}));
    t.emplace_back(p + "mlp.down_proj.weight", randn({16, 24}).to(at::kBFloat16));
  }
  t.emplace_back("model.norm.weight", randn({16}));
  t.emplace_back("lm_head.weight", randn({40, 16}));
  t.emplace_back("position_ids", at::randint(-(int64_t(1) << 40), int64_t(1) << 40, {2, 7}, g,
                                             at::TensorOptions().dtype(at::kLong)));
  t.emplace_back("extra.f64", at::randn({3, 2}, g, at::kDouble));
  t.emplace_back("extra.i32", at::randint(-100000, 100000, {5}, g, at::TensorOptions().dtype(at::kInt)));
  t.emplace_back("extra.i16", at::randint(-30000, 30000, {3}, g, at::TensorOptions().dtype(at::kShort)));
  t.emplace_back("extra.i8", at::randint(-128, 127, {7}, g, at::TensorOptions().dtype(at::kChar)));
  t.emplace_back("extra.u8", at::randint(0, 255, {9}, g, at::TensorOptions().dtype(at::kByte)));
  t.emplace_back("extra.mask", at::randint(0, 2, {2, 3}, g).to(at::kBool));
  t.emplace_back("extra.scalar", at::scalar_tensor(3.25, at::kFloat));
  t.emplace_back("extra.empty", at::empty({0, 4}, at::kFloat));
  t.emplace_back("extra.transposed", randn({5, 3}).t());  // non-contiguous
  return t;
}

// Same dtype, shape and bytes (NaNs and signed zeros included).
inline bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.cpu().contiguous(), cb = b.cpu().contiguous();
  return ca.nbytes() == cb.nbytes() &&
         (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// [u64 N = header.size()][header][data], no padding: for hand-made (bad) files.
inline void write_raw_safetensors(const std::filesystem::path& p, const std::string& header,
                                  const std::string& data) {
  uint64_t n = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_bytes(p, bytes + header + data);
}

// The message of the CheckpointError `fn` throws ("NO ERROR" / "WRONG TYPE: ..." otherwise).
template <typename Fn>
std::string checkpoint_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const lawcat::CheckpointError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("WRONG TYPE: ") + e.what();
  }
  return "NO ERROR";
}

inline bool has(const std::string& msg, const std::string& part) {
  return msg.find(part) != std::string::npos;
}

}  // namespace lawcat::test

// Checks that `msg` contains every listed fragment, printing the message on failure.
#define LAWCAT_CHECK_MSG(msg, ...)                                   \
  do {                                                               \
    const std::string lawcat_msg_ = (msg);                           \
    INFO("message: " << lawcat_msg_);                                \
    for (const std::string& part : std::initializer_list<std::string>{__VA_ARGS__}) { \
      CAPTURE(part);                                                 \
      CHECK(::lawcat::test::has(lawcat_msg_, part));                 \
    }                                                                \
  } while (0)
