#include "model/rope.h"

#include <cmath>

#include "util/error.h"

namespace lawcat::model {

at::Tensor rope_inv_freq(const RopeOptions& o) {
  TORCH_CHECK(o.head_dim > 0 && o.head_dim % 2 == 0, "RoPE: head_dim must be even and positive, got ",
              o.head_dim);
  // As HF: 1 / theta^(arange(0, D, 2) / D), in fp32.
  at::Tensor exponent =
      at::arange(0, o.head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(o.head_dim);
  at::Tensor inv_freq = 1.0 / at::pow(o.theta, exponent);  // [D/2]
  const auto& s = o.scaling;
  if (s.type == "none" || s.type == "default") return inv_freq;
  if (s.type == "linear") return inv_freq / s.factor;
  if (s.type == "llama3") {
    // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend between.
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = old_len / s.low_freq_factor;
    const double high_freq_wavelen = old_len / s.high_freq_factor;
    at::Tensor wavelen = 2.0 * M_PI / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
    at::Tensor smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    at::Tensor smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
    at::Tensor is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    return at::where(is_medium, smoothed, scaled);
  }
  throw ConfigError("RoPE: unsupported rope_scaling type '" + s.type +
                    "' (supported: none, linear, llama3)");
}

RotaryEmbedding::RotaryEmbedding(const RopeOptions& options)
    : options_(options), inv_freq_(rope_inv_freq(options)) {}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(int64_t offset, int64_t T,
                                                           at::Device device,
                                                           at::ScalarType dtype) const {
  TORCH_CHECK(inv_freq_.defined(), "RotaryEmbedding used before construction");
  auto fopts = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor pos = at::arange(offset, offset + T, fopts.dtype(at::kLong)).to(at::kFloat);  // [T]
  at::Tensor freqs = pos.unsqueeze(1) * inv_freq_.to(device).unsqueeze(0);  // [T, D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);                              // [T, D]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

}  // namespace lawcat::model
