// Softmax attention of one query token over a static KV cache whose valid length is held on
// the device (model::StaticKVCache, the softmax model's CUDA-graph decode). On CUDA the
// split-KV kernel of csrc_kernels/attention (every key read once per token, all SMs busy, the
// length read by the kernel, so one captured graph serves every position); the model falls back
// to masked SDPA where static_cache_attention_supported says no.
#pragma once
#include <ATen/ATen.h>

namespace lawcat::ops {

// q [B, Hkv, g, D] (the g query heads of a kv head as rows), k, v [B, Hkv, capacity, D],
// position: int64 [1] on their device, keys 0..position valid.
bool static_cache_attention_supported(const at::Tensor& q, const at::Tensor& k);
// softmax(q k^T / sqrt(D)) v over the valid keys: [B, Hkv, g, D] in q's dtype.
at::Tensor static_cache_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& position);

}  // namespace lawcat::ops
