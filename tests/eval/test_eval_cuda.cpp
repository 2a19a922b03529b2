// The GPU inference paths of the models (skipped without a GPU): the fused LAWCAT
// prefill (prologue kernel, then the GLA kernel) against the ATen path, decoding that
// continues a fused prefill, and the softmax one-query decode path (KV cache) against
// SDPA over the whole sequence. Errors are relative L2 norms; the fp32 model on the
// same device is the oracle where paths round differently.
#include <ATen/ATen.h>

#include "common/catch.h"
#include "eval/eval_helpers.h"
#include "model/swap.h"

using namespace lawcat;

namespace {

double rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).norm() / b.to(at::kDouble).norm()).item<double>();
}

// A small model with the Llama-3.2-1B head shape (d = 64, GQA 2) on the GPU.
model::LlamaForCausalLM gpu_model(bool lawcat, at::ScalarType dtype) {
  io::LlamaConfig c = test::tiny_eval_config();
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  auto m = test::tiny_random_model(c, 3, lawcat);
  {
    at::NoGradGuard g;
    for (auto& p : m->parameters()) p.mul_(0.5);  // keep the 256-wide activations moderate
  }
  m->to(at::kCUDA, dtype);
  for (auto& [n, t] : model::lawcat_parameters(*m)) t.set_data(t.to(at::kCUDA, at::kFloat));
  m->eval();
  return m;
}

// Logits of the last position after `ids`, decoding token by token through a state after a
// prefill of the first `prefill` tokens; and the same from one stateless forward each time.
void compare_decode(model::LlamaForCausalLMImpl& m, const at::Tensor& ids, int64_t prefill, double tol) {
  at::NoGradGuard g;
  model::DecodeState st = m.new_decode_state(1);
  at::Tensor last = m.forward(ids.narrow(1, 0, prefill), st).select(1, prefill - 1);  // [1, V]
  for (int64_t t = prefill; t <= ids.size(1); ++t) {
    CAPTURE(t);
    const at::Tensor full = m.forward(ids.narrow(1, 0, t)).select(1, t - 1);
    CHECK(rel(last, full) < tol);
    if (t < ids.size(1)) last = m.forward(ids.narrow(1, t, 1), st).select(1, 0);
  }
}

}  // namespace

TEST_CASE("CUDA: fused LAWCAT prefill matches the ATen path and the fp32 model", "[cuda][eval]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  auto m32 = gpu_model(true, at::kFloat);
  auto m16 = gpu_model(true, at::kBFloat16);
  at::manual_seed(7);
  const at::Tensor ids = at::randint(3, 512, {2, 150}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
  at::Tensor oracle, fused, aten;
  {
    at::NoGradGuard g;
    oracle = m32->hidden_states(ids).to(at::kFloat);  // fp32: the ATen path
    fused = m16->hidden_states(ids).to(at::kFloat);   // bf16, no grad: prologue + GLA kernels
  }
  aten = m16->hidden_states(ids).detach().to(at::kFloat);  // grad mode: the ATen (training) path
  const double e_fused = rel(fused, oracle), e_aten = rel(aten, oracle), e_pair = rel(fused, aten);
  INFO("fused vs fp32 " << e_fused << ", ATen vs fp32 " << e_aten << ", fused vs ATen " << e_pair);
  CHECK(e_fused < 2e-2);
  CHECK(e_fused < 1.5 * e_aten + 5e-3);
  CHECK(e_pair < 3e-2);
}

TEST_CASE("CUDA: decoding after a fused LAWCAT prefill == stateless forward", "[cuda][eval]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  auto m = gpu_model(true, at::kBFloat16);
  at::manual_seed(8);
  const at::Tensor ids = at::randint(3, 512, {1, 140}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
  compare_decode(*m, ids, 130, 3e-2);  // prefill 130 (not a chunk multiple), then 10 steps
}

TEST_CASE("CUDA: softmax one-query decode through the KV cache == SDPA over the sequence", "[cuda][eval]") {
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  at::manual_seed(9);
  const at::Tensor ids = at::randint(3, 512, {1, 140}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    CAPTURE(dtype);
    auto m = gpu_model(false, dtype);
    compare_decode(*m, ids, 130, dtype == at::kFloat ? 1e-4 : 3e-2);
  }
}
