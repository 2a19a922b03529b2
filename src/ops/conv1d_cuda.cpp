// CUDA bindings of the causal Conv1D kernels (csrc_kernels/conv1d): check, convert to a
// kernel dtype (bf16 / fp16 / fp32; fp64 computes in fp32), fill Conv1dParams, launch
// on the current stream. Dtype rule as ops/conv1d.h: out and dx in x's dtype, dw in
// w's, dcache in the cache's.
#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "api.h"
#include "ops/cuda_binding.h"
#include "ops/cuda_ops.h"

namespace lawcat::ops::cuda {
namespace {

using binding::check_launch;
using binding::kernel_dtype;
using binding::to_kdtype;
namespace k = lawcat::kernels;

struct ConvInputs {
  at::Tensor x, w, cache;  // x: kernel dtype, last dim contiguous; w fp32 [C, W]; cache [B, Cin, W-1]
  int64_t B, T, Cin, C, W;
};

ConvInputs prepare(const char* op, const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache,
                   int64_t repeat, int64_t head_dim) {
  TORCH_CHECK(x.is_cuda() && w.is_cuda(), op, ": x and w must be CUDA tensors");
  TORCH_CHECK(x.dim() == 3, op, ": x must be [B, T, Cin], got ", x.sizes());
  TORCH_CHECK(repeat >= 1 && head_dim >= 1 && x.size(2) % head_dim == 0, op, ": repeat ", repeat,
              " / head_dim ", head_dim, " do not divide x channels ", x.size(2));
  ConvInputs in;
  in.B = x.size(0);
  in.T = x.size(1);
  in.Cin = x.size(2);
  in.C = in.Cin * repeat;
  TORCH_CHECK(w.dim() == 2 && w.size(0) == in.C && w.size(1) >= 1, op, ": w must be [C, W] with C = ", in.C,
              ", got ", w.sizes());
  in.W = w.size(1);
  TORCH_CHECK(in.W <= 8, op, ": conv width W = ", in.W, " > 8 is not supported by the CUDA kernel");
  const auto dt = kernel_dtype(x.scalar_type());
  in.x = x.to(dt);
  if (in.x.stride(2) != 1) in.x = in.x.contiguous();
  in.w = w.to(at::kFloat).contiguous();
  if (cache.defined()) {
    TORCH_CHECK(cache.dim() == 3 && cache.size(0) == in.B && cache.size(1) == in.Cin && cache.size(2) == in.W - 1,
                op, ": cache must be [B, Cin, W-1] = [", in.B, ", ", in.Cin, ", ", in.W - 1, "], got ",
                cache.sizes());
    in.cache = cache.to(dt).contiguous();
  }
  return in;
}

k::Conv1dParams params(const ConvInputs& in, int64_t repeat, int64_t head_dim) {
  k::Conv1dParams p;
  p.dtype = to_kdtype(in.x.scalar_type());
  p.batch = static_cast<int>(in.B);
  p.seqlen = static_cast<int>(in.T);
  p.channels = static_cast<int>(in.C);
  p.width = static_cast<int>(in.W);
  p.repeat = static_cast<int>(repeat);
  p.head_dim = static_cast<int>(repeat == 1 ? 1 : head_dim);
  p.x = in.x.data_ptr();
  p.x_batch_stride = in.x.stride(0);
  p.x_row_stride = in.x.stride(1);
  p.w = in.w.data_ptr<float>();
  p.cache = in.cache.defined() ? in.cache.data_ptr() : nullptr;
  return p;
}

}  // namespace

at::Tensor causal_conv1d_fwd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache,
                             int64_t repeat, int64_t head_dim) {
  const c10::cuda::CUDAGuard guard(x.device());
  ConvInputs in = prepare("causal_conv1d", x, w, cache, repeat, head_dim);
  at::Tensor out = at::empty({in.B, in.T, in.C}, in.x.options());
  k::Conv1dParams p = params(in, repeat, head_dim);
  p.out = out.data_ptr();
  check_launch(k::launch_conv1d_fwd(p, at::cuda::getCurrentCUDAStream()), "causal_conv1d");
  return out.scalar_type() == x.scalar_type() ? out : out.to(x.scalar_type());
}

at::Tensor causal_conv1d_fwd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache) {
  return causal_conv1d_fwd(x, w, cache, 1, 1);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> causal_conv1d_bwd(const at::Tensor& x, const at::Tensor& w,
                                                                 const at::Tensor& cache, const at::Tensor& dout,
                                                                 int64_t repeat, int64_t head_dim) {
  const c10::cuda::CUDAGuard guard(x.device());
  ConvInputs in = prepare("causal_conv1d backward", x, w, cache, repeat, head_dim);
  TORCH_CHECK(dout.defined() && dout.sizes() == at::IntArrayRef({in.B, in.T, in.C}),
              "causal_conv1d backward: dout must be [B, T, C] = [", in.B, ", ", in.T, ", ", in.C, "], got ",
              dout.defined() ? dout.sizes() : at::IntArrayRef{});
  const at::Tensor d = dout.to(in.x.scalar_type()).contiguous();
  const bool fp32_dx = repeat > 1;
  at::Tensor dx = at::empty({in.B, in.T, in.C}, fp32_dx ? in.x.options().dtype(at::kFloat) : in.x.options());
  at::Tensor dw = at::zeros({in.C, in.W}, in.x.options().dtype(at::kFloat));
  at::Tensor dcache;
  if (cache.defined() && in.W > 1) dcache = at::empty({in.B, in.C, in.W - 1}, in.x.options().dtype(at::kFloat));
  k::Conv1dParams p = params(in, repeat, head_dim);
  p.dout = d.data_ptr();
  p.dx = dx.data_ptr();
  p.dx_fp32 = fp32_dx;
  p.dw = dw.data_ptr<float>();
  p.dcache = dcache.defined() ? dcache.data_ptr<float>() : nullptr;
  check_launch(k::launch_conv1d_bwd(p, at::cuda::getCurrentCUDAStream()), "causal_conv1d backward");
  if (repeat > 1) {  // sum the repeated heads back onto their input head
    const int64_t heads = in.Cin / head_dim;
    dx = dx.view({in.B, in.T, heads, repeat, head_dim}).sum(3).view({in.B, in.T, in.Cin});
    if (dcache.defined())
      dcache = dcache.view({in.B, heads, repeat, head_dim, in.W - 1}).sum(2).view({in.B, in.Cin, in.W - 1});
  }
  if (cache.defined() && !dcache.defined()) dcache = at::zeros_like(cache);
  return {dx.to(x.scalar_type()), dw.to(w.scalar_type()),
          cache.defined() ? dcache.to(cache.scalar_type()) : at::Tensor()};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> causal_conv1d_bwd(const at::Tensor& x, const at::Tensor& w,
                                                                 const at::Tensor& cache, const at::Tensor& dout) {
  return causal_conv1d_bwd(x, w, cache, dout, 1, 1);
}

at::Tensor causal_conv1d_step(const at::Tensor& x_t, const at::Tensor& w, at::Tensor& cache) {
  const c10::cuda::CUDAGuard guard(x_t.device());
  TORCH_CHECK(x_t.is_cuda() && x_t.dim() == 2, "causal_conv1d_step: x_t must be a CUDA [B, C] tensor, got ",
              x_t.sizes());
  const int64_t B = x_t.size(0), C = x_t.size(1);
  TORCH_CHECK(w.dim() == 2 && w.size(0) == C, "causal_conv1d_step: w must be [C, W], got ", w.sizes());
  const int64_t W = w.size(1);
  TORCH_CHECK(cache.defined() && cache.sizes() == at::IntArrayRef({B, C, W - 1}),
              "causal_conv1d_step: cache must be [B, C, W-1] = [", B, ", ", C, ", ", W - 1, "]");
  const auto dt = kernel_dtype(x_t.scalar_type());
  at::Tensor x = x_t.to(dt).contiguous();
  // The kernel rolls a contiguous cache of the kernel dtype in place; copy back otherwise.
  const bool direct = cache.scalar_type() == dt && cache.is_contiguous();
  at::Tensor work = direct ? cache : cache.to(dt).contiguous();
  at::Tensor wf = w.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({B, C}, x.options());
  k::Conv1dParams p;
  p.dtype = to_kdtype(dt);
  p.batch = static_cast<int>(B);
  p.seqlen = 1;
  p.channels = static_cast<int>(C);
  p.width = static_cast<int>(W);
  p.x = x.data_ptr();
  p.x_batch_stride = x.stride(0);
  p.w = wf.data_ptr<float>();
  p.cache = W > 1 ? work.data_ptr() : nullptr;
  p.out = out.data_ptr();
  check_launch(k::launch_conv1d_step(p, at::cuda::getCurrentCUDAStream()), "causal_conv1d_step");
  if (!direct) cache.copy_(work);
  return out.to(x_t.scalar_type());
}

}  // namespace lawcat::ops::cuda
#endif  // LAWCAT_HAVE_CUDA
