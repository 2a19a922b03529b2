// What the CUDA bindings of src/ops share (ops/gla_cuda.cpp, ops/lawcat_core_cuda.cpp,
// ops/conv1d_cuda.cpp): kernel dtypes, the launch check, padding to the kernels' head dims,
// kernel-ready strides, the GLA inputs (checked and padded) and the sequence / segment plan
// that the GLA kernels and the fused LAWCAT core both walk. Only built with the CUDA kernels.
#pragma once
#ifdef LAWCAT_HAVE_CUDA
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>

#include "api.h"
#include "ops/gla.h"

namespace lawcat::ops::cuda::binding {

namespace k = lawcat::kernels;

// bf16 / fp16 / fp32 stay; anything else computes in fp32.
inline at::ScalarType kernel_dtype(at::ScalarType t) {
  return (t == at::kBFloat16 || t == at::kHalf || t == at::kFloat) ? t : at::kFloat;
}
inline k::DType to_kdtype(at::ScalarType t) {
  return t == at::kBFloat16 ? k::DType::kBF16 : t == at::kHalf ? k::DType::kF16 : k::DType::kF32;
}
// A launcher's cudaError_t as a TORCH_CHECK naming the op.
inline void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Pad the last dim to n with zeros (and the second-to-last to m when m > 0).
at::Tensor pad_last(const at::Tensor& t, int64_t n, int64_t m = 0);
// The inverse: narrow the last dim to n (and the second-to-last to m when m > 0).
at::Tensor unpad(const at::Tensor& t, int64_t n, int64_t m = 0);
// Kernel-ready view: last dim contiguous, row strides and base 16-byte aligned.
at::Tensor kernel_ready(const at::Tensor& t);

struct Inputs {
  at::Tensor q, k, v, g, s0, z0;  // kernel dtype / fp32, padded to D
  int64_t B, T, H, Hkv, F, V, D;
  at::ScalarType dt;
};

// Checks q, k [B, T, H, F], v [B, T, Hkv, V], g [B, T, Hkv, F], s0 / z0 (num_seqs of them or
// undefined) and converts / pads them to the kernels' dtype and head dim D in {64, 128}.
Inputs prepare(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
               const at::Tensor& s0, const at::Tensor& z0, int64_t num_seqs);

// Sequence / segment plan. Segments of seg_chunks chunks: enough CTAs (segments x heads)
// to fill the GPU about twice; each CTA walks its chunks with the state on chip.
struct Plan {
  int64_t N = 0, C = 64, num_chunks = 0, num_segs = 0, seg_chunks = 1, segs_per_seq = 1;
  at::Tensor tables;  // device int32: cu | chunk_offsets | seq_seg_offsets | seg_seq | seg_c0 | seg_c1
  const int *cu = nullptr, *chunk_off = nullptr, *seq_seg_off = nullptr, *seg_seq = nullptr, *seg_c0 = nullptr,
            *seg_c1 = nullptr;
};

int sm_count();
// CTAs (segments x heads) to aim for, per SM: $LAWCAT_GLA_CTAS_PER_SM (default 2).
int64_t ctas_per_sm();
// per_sm: CTAs that fit on one SM (0 = $LAWCAT_GLA_CTAS_PER_SM / 2, the GLA kernels' value).
// cu_seqlens undefined: B sequences of T tokens; else packed sequences (B = 1).
Plan make_plan(const Inputs& in, const at::Tensor& cu_seqlens, int64_t per_sm = 0);
// GlaParams from the prepared inputs and the plan (pointers, strides, sizes, plan tables).
k::GlaParams base_params(const Inputs& in, const Plan& pl, const GlaOptions& o);

}  // namespace lawcat::ops::cuda::binding
#endif  // LAWCAT_HAVE_CUDA
