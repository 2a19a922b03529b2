// Rotary position embedding, Hugging Face convention: a head vector of D
// dims is split into halves [x1 | x2] and pair j is (x[j], x[j + D/2])
// (llama2.c and Meta's original code rotate adjacent pairs (x[2j], x[2j+1])
// instead; the converter permutes q/k rows to this layout).
//   inv_freq[j] = theta^(-2j/D), j < D/2, then rope scaling ("linear", "llama3")
//   cos/sin[t]  = cos/sin(pos_t * [inv_freq, inv_freq])                   [T, D]
//   rope(x)     = x * cos + rotate_half(x) * sin, rotate_half([x1|x2]) = [-x2|x1]
#pragma once
#include <ATen/ATen.h>

#include <utility>

#include "io/hf_config.h"
#include "ops/rope.h"

namespace lawcat::model {

struct RopeOptions {
  int64_t head_dim = 0;
  double theta = 10000.0;
  io::RopeScaling scaling;
};

// inv_freq [D/2] in fp32, with the rope scaling applied (as HF's rope init functions).
at::Tensor rope_inv_freq(const RopeOptions& options);

class RotaryEmbedding {
 public:
  RotaryEmbedding() = default;
  explicit RotaryEmbedding(const RopeOptions& options);
  // Tables for positions offset .. offset+T-1: cos, sin [T, D] computed in fp32
  // and cast to `dtype` on `device`.
  std::pair<at::Tensor, at::Tensor> cos_sin(int64_t offset, int64_t T, at::Device device,
                                            at::ScalarType dtype) const;
  const at::Tensor& inv_freq() const { return inv_freq_; }  // [D/2] fp32, CPU
  const RopeOptions& options() const { return options_; }

 private:
  RopeOptions options_;
  at::Tensor inv_freq_;
};

// x [B, H, T, D], cos/sin [T, D] (same dtype as x) -> [B, H, T, D] (the op lives in ops/rope.h).
using ops::apply_rope;

}  // namespace lawcat::model
