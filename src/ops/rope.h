// Rotary position embedding applied to a head tensor, Hugging Face convention (the half
// split: pair j is (x[j], x[j + D/2])); the tables come from model/rope.h's RotaryEmbedding.
//   rope(x) = x * cos + rotate_half(x) * sin, rotate_half([x1|x2]) = [-x2|x1]
// An op so that ops::lawcat_core can rotate the linear path's q, k (attention.rope).
#pragma once
#include <ATen/ATen.h>

namespace lawcat::ops {

// x [B, H, T, D], cos/sin [T, D] or [B, T, D] (per-row positions; same dtype as x) -> [B, H, T, D].
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace lawcat::ops
