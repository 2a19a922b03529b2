// chunk_gla / gla_step: shape checks, the autograd Function, and the one dispatch
// point (CPU tensors -> ops/gla_cpu, CUDA tensors -> ops/cuda_ops.h).
//
// The Function saves only the inputs (q, k, v, g, s0, z0): both backwards
// recompute the chunk states rather than storing them.
#include "ops/gla.h"

#include <torch/csrc/autograd/custom_function.h>

#include "ops/cuda_ops.h"
#include "ops/gla_cpu.h"

namespace lawcat::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_options(const char* op, const GlaOptions& o) {
  TORCH_CHECK(o.chunk_size >= 1, op, ": chunk_size must be >= 1, got ", o.chunk_size);
  TORCH_CHECK(o.eps >= 0, op, ": eps must be >= 0, got ", o.eps);
}

void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name, " must be floating point, got ",
              t.scalar_type());
}

// q, k [B, T, H, F]; v [B, T, Hkv, V]; g [B, T, Hkv, F]; s0 [B, H, F, V]; z0 [B, H, F].
void check_gla_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, const at::Tensor& s0, const at::Tensor& z0) {
  const char* op = "chunk_gla";
  TORCH_CHECK(q.defined() && k.defined() && v.defined() && g.defined(), op,
              ": q, k, v, g must all be defined");
  TORCH_CHECK(q.dim() == 4, op, ": q must be [B, T, H, F], got ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes(), op, ": k ", k.sizes(), " must match q ", q.sizes(),
              " [B, T, H, F]");
  TORCH_CHECK(v.dim() == 4, op, ": v must be [B, T, Hkv, V], got ", v.sizes());
  TORCH_CHECK(g.dim() == 4, op, ": g must be [B, T, Hkv, F], got ", g.sizes());
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), F = q.size(3);
  const int64_t Hkv = v.size(2), V = v.size(3);
  TORCH_CHECK(v.size(0) == B && v.size(1) == T, op, ": v ", v.sizes(), " disagrees with q ",
              q.sizes(), " on B or T");
  TORCH_CHECK(Hkv >= 1 && H % Hkv == 0, op, ": query heads H = ", H,
              " must be a multiple of kv heads Hkv = ", Hkv, " (q ", q.sizes(), ", v ", v.sizes(),
              ")");
  TORCH_CHECK(g.size(0) == B && g.size(1) == T && g.size(2) == Hkv && g.size(3) == F, op,
              ": g must be [B, T, Hkv, F] = [", B, ", ", T, ", ", Hkv, ", ", F, "], got ",
              g.sizes());
  TORCH_CHECK(F >= 1 && V >= 1, op, ": F = ", F, " and V = ", V, " must be >= 1");
  check_float(op, "q", q);
  check_float(op, "k", k);
  check_float(op, "v", v);
  check_float(op, "g", g);
  for (const at::Tensor* t : {&k, &v, &g})
    TORCH_CHECK(t->device() == q.device(), op, ": all inputs must be on q's device ", q.device(),
                ", got ", t->device());
  TORCH_CHECK(s0.defined() == z0.defined(), op,
              ": give both initial_state and initial_normalizer or neither");
  if (s0.defined()) {
    TORCH_CHECK(
        s0.dim() == 4 && s0.size(0) == B && s0.size(1) == H && s0.size(2) == F && s0.size(3) == V,
        op, ": initial_state must be [B, H, F, V] = [", B, ", ", H, ", ", F, ", ", V, "], got ",
        s0.sizes());
    TORCH_CHECK(z0.dim() == 3 && z0.size(0) == B && z0.size(1) == H && z0.size(2) == F, op,
                ": initial_normalizer must be [B, H, F] = [", B, ", ", H, ", ", F, "], got ",
                z0.sizes());
    check_float(op, "initial_state", s0);
    check_float(op, "initial_normalizer", z0);
    TORCH_CHECK(s0.device() == q.device() && z0.device() == q.device(), op,
                ": initial state/normalizer must be on q's device ", q.device());
  }
}

// fp32 unless already fp32/fp64 (differentiable: grads flow back in the input dtype).
at::Tensor as_fp32_or_64(const at::Tensor& t) {
  if (!t.defined() || t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble) return t;
  return t.to(at::kFloat);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gla_fwd(const at::Tensor& q, const at::Tensor& k,
                                                       const at::Tensor& v, const at::Tensor& g,
                                                       const at::Tensor& s0, const at::Tensor& z0,
                                                       const GlaOptions& o) {
  if (q.is_cuda()) {
#ifdef LAWCAT_HAVE_CUDA
    return cuda::chunk_gla_fwd(q, k, v, g, s0, z0, o);
#else
    no_cuda("chunk_gla");
#endif
  }
  return cpu::chunk_gla_fwd(q, k, v, g, s0, z0, o);
}

struct ChunkGlaFunction : public torch::autograd::Function<ChunkGlaFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, const at::Tensor& g,
                               const std::optional<at::Tensor>& s0_opt,
                               const std::optional<at::Tensor>& z0_opt, const GlaOptions& options) {
    const at::Tensor s0 = s0_opt.value_or(at::Tensor()), z0 = z0_opt.value_or(at::Tensor());
    ctx->save_for_backward({q, k, v, g, s0, z0});
    ctx->saved_data["chunk_size"] = options.chunk_size;
    ctx->saved_data["normalize"] = options.normalize;
    ctx->saved_data["eps"] = options.eps;
    ctx->set_materialize_grads(false);
    auto [y, S_T, z_T] = gla_fwd(q, k, v, g, s0, z0, options);
    return {y, S_T, z_T};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &g = saved[3];
    const at::Tensor &s0 = saved[4], &z0 = saved[5];
    GlaOptions o;
    o.chunk_size = ctx->saved_data["chunk_size"].toInt();
    o.normalize = ctx->saved_data["normalize"].toBool();
    o.eps = ctx->saved_data["eps"].toDouble();
    const at::Tensor &dy = grads[0], &dS_T = grads[1], &dz_T = grads[2];
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> r;
    if (q.is_cuda()) {
#ifdef LAWCAT_HAVE_CUDA
      const at::Tensor dy_full =
          dy.defined() ? dy : at::zeros({q.size(0), q.size(1), q.size(2), v.size(3)}, v.options());
      r = cuda::chunk_gla_bwd(q, k, v, g, s0, z0, dy_full, dS_T, dz_T, o);
#else
      no_cuda("chunk_gla backward");
#endif
    } else {
      r = cpu::chunk_gla_bwd(q, k, v, g, s0, z0, dy, dS_T, dz_T, o);
    }
    auto& [dq, dk, dv, dg, ds0, dz0] = r;
    return {dq, dk, dv, dg, ds0, dz0, at::Tensor()};
  }
};

}  // namespace

GlaResult chunk_gla(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, const std::optional<at::Tensor>& initial_state,
                    const std::optional<at::Tensor>& initial_normalizer,
                    const GlaOptions& options) {
  const at::Tensor s0 = initial_state.value_or(at::Tensor());
  const at::Tensor z0 = initial_normalizer.value_or(at::Tensor());
  check_gla_args(q, k, v, g, s0, z0);
  check_options("chunk_gla", options);
  std::optional<at::Tensor> s0_opt, z0_opt;
  if (s0.defined()) {
    s0_opt = as_fp32_or_64(s0);
    z0_opt = as_fp32_or_64(z0);
  }
  auto out = ChunkGlaFunction::apply(q, k, v, as_fp32_or_64(g), s0_opt, z0_opt, options);
  return GlaResult{out[0], out[1], out[2]};
}

at::Tensor gla_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& g, at::Tensor& state, at::Tensor& normalizer,
                    const GlaOptions& options) {
  const char* op = "gla_step";
  check_options(op, options);
  TORCH_CHECK(q.dim() == 3, op, ": q must be [B, H, F], got ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes(), op, ": k ", k.sizes(), " must match q ", q.sizes());
  TORCH_CHECK(v.dim() == 3 && v.size(0) == q.size(0), op,
              ": v must be [B, Hkv, V] with B = ", q.size(0), ", got ", v.sizes());
  const int64_t B = q.size(0), H = q.size(1), F = q.size(2), Hkv = v.size(1), V = v.size(2);
  TORCH_CHECK(Hkv >= 1 && H % Hkv == 0, op, ": H = ", H, " must be a multiple of Hkv = ", Hkv);
  TORCH_CHECK(g.dim() == 3 && g.size(0) == B && g.size(1) == Hkv && g.size(2) == F, op,
              ": g must be [B, Hkv, F] = [", B, ", ", Hkv, ", ", F, "], got ", g.sizes());
  TORCH_CHECK(state.defined() && state.dim() == 4 && state.size(0) == B && state.size(1) == H &&
                  state.size(2) == F && state.size(3) == V,
              op, ": state must be [B, H, F, V] = [", B, ", ", H, ", ", F, ", ", V, "], got ",
              state.defined() ? state.sizes() : at::IntArrayRef{});
  TORCH_CHECK(normalizer.defined() && normalizer.dim() == 3 && normalizer.size(0) == B &&
                  normalizer.size(1) == H && normalizer.size(2) == F,
              op, ": normalizer must be [B, H, F] = [", B, ", ", H, ", ", F, "], got ",
              normalizer.defined() ? normalizer.sizes() : at::IntArrayRef{});
  TORCH_CHECK(state.scalar_type() == at::kFloat || state.scalar_type() == at::kDouble, op,
              ": state must be fp32 (or fp64), got ", state.scalar_type());
  TORCH_CHECK(normalizer.scalar_type() == state.scalar_type(), op, ": normalizer dtype ",
              normalizer.scalar_type(), " must match state dtype ", state.scalar_type());
  for (const at::Tensor* t :
       std::initializer_list<const at::Tensor*>{&k, &v, &g, &state, &normalizer})
    TORCH_CHECK(t->device() == q.device(), op, ": all tensors must be on q's device ", q.device(),
                ", got ", t->device());
  if (q.is_cuda()) {
#ifdef LAWCAT_HAVE_CUDA
    return cuda::gla_step(q, k, v, g, state, normalizer, options);
#else
    no_cuda(op);
#endif
  }
  return cpu::gla_step(q, k, v, g, state, normalizer, options);
}

}  // namespace lawcat::ops
