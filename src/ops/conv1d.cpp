// causal_conv1d: shape checks, the autograd Function, and the one dispatch point
// (CPU tensors -> ops/conv1d_cpu, CUDA tensors -> ops/cuda_ops.h).
//
// Dtype rule (both paths): accumulate in fp32 (fp64 when x or w is fp64), return
// out in x's dtype; gradients come back in their input's dtype (dx: x, dw: w,
// dcache: cache). So fp32 filters on bf16 activations are fine.
#include "ops/conv1d.h"

#include <torch/csrc/autograd/custom_function.h>

#include "ops/conv1d_cpu.h"
#include "ops/cuda_ops.h"

namespace lawcat::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_conv_args(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache) {
  TORCH_CHECK(x.dim() == 3, "causal_conv1d: x must be [B, T, C], got ", x.sizes());
  TORCH_CHECK(w.dim() == 2 && w.size(0) == x.size(2) && w.size(1) >= 1,
              "causal_conv1d: w must be [C, W] with C = ", x.size(2), " and W >= 1, got ",
              w.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()) && at::isFloatingType(w.scalar_type()),
              "causal_conv1d: x (", x.scalar_type(), ") and w (", w.scalar_type(),
              ") must be floating point");
  TORCH_CHECK(w.device() == x.device(), "causal_conv1d: w on ", w.device(), " but x on ",
              x.device());
  if (cache.defined()) {
    const int64_t B = x.size(0), C = x.size(2), W = w.size(1);
    TORCH_CHECK(
        cache.dim() == 3 && cache.size(0) == B && cache.size(1) == C && cache.size(2) == W - 1,
        "causal_conv1d: initial_cache must be [B, C, W-1] = [", B, ", ", C, ", ", W - 1, "], got ",
        cache.sizes());
    TORCH_CHECK(cache.device() == x.device(), "causal_conv1d: initial_cache on ", cache.device(),
                " but x on ", x.device());
    TORCH_CHECK(at::isFloatingType(cache.scalar_type()),
                "causal_conv1d: initial_cache must be floating point, got ", cache.scalar_type());
  }
}

at::Tensor conv_fwd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& cache) {
  if (x.is_cuda()) {
#ifdef LAWCAT_HAVE_CUDA
    return cuda::causal_conv1d_fwd(x, w, cache);
#else
    no_cuda("causal_conv1d");
#endif
  }
  return cpu::causal_conv1d_fwd(x, w, cache);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv_bwd(const at::Tensor& x, const at::Tensor& w,
                                                        const at::Tensor& cache,
                                                        const at::Tensor& dout) {
  if (x.is_cuda()) {
#ifdef LAWCAT_HAVE_CUDA
    return cuda::causal_conv1d_bwd(x, w, cache, dout);
#else
    no_cuda("causal_conv1d backward");
#endif
  }
  return cpu::causal_conv1d_bwd(x, w, cache, dout);
}

struct CausalConv1dFunction : public torch::autograd::Function<CausalConv1dFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const std::optional<at::Tensor>& initial_cache) {
    const at::Tensor cache = initial_cache.value_or(at::Tensor());
    ctx->save_for_backward({x, w, cache});
    return conv_fwd(x, w, cache);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &cache = saved[2];
    auto [dx, dw, dcache] = conv_bwd(x, w, cache, grad_outputs[0]);
    return {dx, dw, dcache};
  }
};

#ifdef LAWCAT_HAVE_CUDA
// The GQA-indexed conv on CUDA: x [B, T, Cin], w [Cin * repeat, W] (kv head indexed by the kernel).
struct RepeatConvFunction : public torch::autograd::Function<RepeatConvFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, int64_t repeat,
                            int64_t head_dim) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["repeat"] = repeat;
    ctx->saved_data["head_dim"] = head_dim;
    return cuda::causal_conv1d_fwd(x, w, at::Tensor(), repeat, head_dim);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    auto [dx, dw, dcache] = cuda::causal_conv1d_bwd(s[0], s[1], at::Tensor(), grads[0].contiguous(),
                                                    ctx->saved_data["repeat"].toInt(),
                                                    ctx->saved_data["head_dim"].toInt());
    (void)dcache;
    return {dx, dw.to(s[1].scalar_type()), at::Tensor(), at::Tensor()};
  }
};
#endif

}  // namespace

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& w, int64_t repeat, int64_t head_dim) {
  TORCH_CHECK(x.dim() == 3, "causal_conv1d: x must be [B, T, Hkv*D], got ", x.sizes());
  TORCH_CHECK(repeat >= 1 && head_dim >= 1 && x.size(2) % head_dim == 0, "causal_conv1d: repeat ", repeat,
              " / head_dim ", head_dim, " do not fit x ", x.sizes(), " [B, T, Hkv*D]");
  const int64_t B = x.size(0), T = x.size(1), Hkv = x.size(2) / head_dim;
  if (x.is_cuda() && repeat > 1) {
#ifdef LAWCAT_HAVE_CUDA
    TORCH_CHECK(w.dim() == 2 && w.size(0) == x.size(2) * repeat && w.size(1) >= 1, "causal_conv1d: w must be [H*D, W] ",
                "with H*D = ", x.size(2) * repeat, ", got ", w.sizes());
    TORCH_CHECK(w.device() == x.device(), "causal_conv1d: w on ", w.device(), " but x on ", x.device());
    return RepeatConvFunction::apply(x.contiguous(), w, repeat, head_dim);
#else
    no_cuda("causal_conv1d");
#endif
  }
  // Elsewhere: repeat the kv heads, then the plain conv.
  const at::Tensor xr = x.reshape({B, T, Hkv, 1, head_dim}).expand({B, T, Hkv, repeat, head_dim});
  return causal_conv1d(xr.reshape({B, T, Hkv * repeat * head_dim}), w);
}

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& w,
                         const std::optional<at::Tensor>& initial_cache) {
  check_conv_args(x, w, initial_cache.value_or(at::Tensor()));
  std::optional<at::Tensor> cache;
  if (initial_cache.has_value() && initial_cache->defined()) cache = initial_cache;
  return CausalConv1dFunction::apply(x, w, cache);
}

at::Tensor causal_conv1d_cache(const at::Tensor& x, int64_t width,
                               const std::optional<at::Tensor>& initial_cache) {
  TORCH_CHECK(x.dim() == 3, "causal_conv1d_cache: x must be [B, T, C], got ", x.sizes());
  TORCH_CHECK(width >= 1, "causal_conv1d_cache: width must be >= 1, got ", width);
  const int64_t B = x.size(0), C = x.size(2), Wm1 = width - 1;
  at::Tensor prefix;
  if (initial_cache.has_value() && initial_cache->defined()) {
    TORCH_CHECK(initial_cache->sizes() == at::IntArrayRef({B, C, Wm1}),
                "causal_conv1d_cache: initial_cache must be [", B, ", ", C, ", ", Wm1, "], got ",
                initial_cache->sizes());
    prefix = initial_cache->to(x.scalar_type()).transpose(1, 2);  // [B, W-1, C]
  } else {
    prefix = at::zeros({B, Wm1, C}, x.options());
  }
  const at::Tensor xp = at::cat({prefix, x}, 1);                            // [B, W-1+T, C]
  return xp.narrow(1, xp.size(1) - Wm1, Wm1).transpose(1, 2).contiguous();  // [B, C, W-1]
}

at::Tensor causal_conv1d_step(const at::Tensor& x_t, const at::Tensor& w, at::Tensor& cache) {
  TORCH_CHECK(x_t.dim() == 2, "causal_conv1d_step: x_t must be [B, C], got ", x_t.sizes());
  TORCH_CHECK(w.dim() == 2 && w.size(0) == x_t.size(1) && w.size(1) >= 1,
              "causal_conv1d_step: w must be [C, W] with C = ", x_t.size(1), ", got ", w.sizes());
  const int64_t B = x_t.size(0), C = x_t.size(1), W = w.size(1);
  TORCH_CHECK(cache.defined() && cache.dim() == 3 && cache.size(0) == B && cache.size(1) == C &&
                  cache.size(2) == W - 1,
              "causal_conv1d_step: cache must be [B, C, W-1] = [", B, ", ", C, ", ", W - 1,
              "], got ", cache.defined() ? cache.sizes() : at::IntArrayRef{});
  TORCH_CHECK(w.device() == x_t.device() && cache.device() == x_t.device(),
              "causal_conv1d_step: x_t (", x_t.device(), "), w (", w.device(), ") and cache (",
              cache.device(), ") must be on one device");
  if (x_t.is_cuda()) {
#ifdef LAWCAT_HAVE_CUDA
    return cuda::causal_conv1d_step(x_t, w, cache);
#else
    no_cuda("causal_conv1d_step");
#endif
  }
  return cpu::causal_conv1d_step(x_t, w, cache);
}

}  // namespace lawcat::ops
