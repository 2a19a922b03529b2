// CUDA binding of csrc_kernels/attention/decode_attention.cu (shape checks naming the tensor,
// the workspace, launch on the current stream). Without the CUDA kernels nothing is supported.
#include "ops/decode_attention.h"

#include <cmath>

#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "api.h"
#include "ops/cuda_binding.h"
#endif

namespace lawcat::ops {

bool static_cache_attention_supported(const at::Tensor& q, const at::Tensor& k) {
#ifdef LAWCAT_HAVE_CUDA
  if (!q.is_cuda() || q.dim() != 4 || k.dim() != 4 || q.size(1) != k.size(1)) return false;
  const bool half = q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf;
  // 16-byte rows: the kernel reads keys as 16-byte vectors
  const bool aligned = k.stride(-1) == 1 && k.stride(2) % 8 == 0 && k.stride(1) % 8 == 0 && k.stride(0) % 8 == 0 &&
                       reinterpret_cast<uintptr_t>(k.data_ptr()) % 16 == 0;
  return half && aligned && kernels::decode_attention_supported(static_cast<int>(q.size(3)), static_cast<int>(q.size(2)));
#else
  (void)q, (void)k;
  return false;
#endif
}

at::Tensor static_cache_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& position) {
  const char* op = "static_cache_attention";
  TORCH_CHECK(static_cache_attention_supported(q, k), op, ": unsupported inputs (q ", q.sizes(), " ", q.scalar_type(),
              " on ", q.device(), ", k ", k.sizes(), "): CUDA, 16-bit, head dim 64 or 128, at most 8 query heads "
              "per kv head, 16-byte aligned cache rows");
#ifdef LAWCAT_HAVE_CUDA
  namespace k_ = lawcat::kernels;
  const int64_t B = q.size(0), Hkv = q.size(1), G = q.size(2), D = q.size(3), cap = k.size(2);
  TORCH_CHECK(k.size(0) == B && k.size(3) == D && v.sizes() == k.sizes() && v.strides() == k.strides() &&
                  k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              op, ": k ", k.sizes(), " and v ", v.sizes(), " must be [B, Hkv, capacity, D] caches for q ", q.sizes(),
              " in its dtype");
  TORCH_CHECK(position.numel() == 1 && position.scalar_type() == at::kLong && position.device() == q.device(), op,
              ": position must be an int64 [1] tensor on ", q.device());
  TORCH_CHECK(cap > 0 && cap < (int64_t(1) << 31), op, ": capacity ", cap, " out of range");
  const at::Tensor qc = cuda::binding::kernel_ready(q);
  k_::DecodeAttentionParams p;
  p.dtype = cuda::binding::to_kdtype(q.scalar_type());
  p.batch = static_cast<int>(B), p.Hkv = static_cast<int>(Hkv), p.groups = static_cast<int>(G);
  p.D = static_cast<int>(D), p.capacity = static_cast<int>(cap), p.chunk = 256;
  p.splits = static_cast<int>((cap + p.chunk - 1) / p.chunk);
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  p.position = position.data_ptr<int64_t>();
  p.q = qc.data_ptr(), p.k = k.data_ptr(), p.v = v.data_ptr();
  p.q_batch_stride = qc.stride(0), p.q_head_stride = qc.stride(1), p.q_row_stride = qc.stride(2);
  p.k_batch_stride = k.stride(0), p.k_head_stride = k.stride(1), p.k_row_stride = k.stride(2);
  p.v_batch_stride = v.stride(0), p.v_head_stride = v.stride(1), p.v_row_stride = v.stride(2);
  at::Tensor out = at::empty({B, Hkv, G, D}, q.options());
  p.out = out.data_ptr();
  p.out_batch_stride = out.stride(0), p.out_head_stride = out.stride(1), p.out_row_stride = out.stride(2);
  const auto f32 = q.options().dtype(at::kFloat);
  const at::Tensor part_out = at::empty({B, Hkv, p.splits, G, D}, f32), part_ms = at::empty({2, B, Hkv, p.splits, G}, f32);
  p.part_out = part_out.data_ptr<float>();
  p.part_max = part_ms[0].data_ptr<float>();
  p.part_sum = part_ms[1].data_ptr<float>();
  const c10::cuda::CUDAGuard guard(q.device());
  cuda::binding::check_launch(k_::launch_decode_attention(p, at::cuda::getCurrentCUDAStream()), op);
  return out;
#else
  (void)v, (void)position;
  return at::Tensor();
#endif
}

}  // namespace lawcat::ops
