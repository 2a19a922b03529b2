// The LAWCAT layer inside a real model: the attention swap, the three mixer
// modes, recurrent decoding, save/load, and the settings checks.
#include <cmath>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include "common/catch.h"
#include "common/tiny_llama.h"
#include "config/schema.h"
#include "io/llama2c_checkpoint.h"
#include "model/checkpoint.h"
#include "model/swap.h"
#include "model/llama.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::model;

namespace {

// 3 layers, hidden 48, 4 query / 2 kv heads of 12, vocab 61, untied.
io::LlamaConfig tiny_config() { return test::tiny_llama_config({61, 48, 96, 3, 12, 512, false}); }

LlamaForCausalLM tiny_model(uint64_t seed = 7) {
  at::manual_seed(seed);
  LlamaForCausalLM m = build_llama(tiny_config());
  // Larger-than-default random weights so attention patterns are not uniform.
  at::NoGradGuard g;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.2);
  return m;
}

// Perturb the LAWCAT parameters away from init so tests exercise every term.
void randomize_lawcat(LlamaForCausalLMImpl& m) {
  at::NoGradGuard g;
  for (auto& [n, t] : lawcat_parameters(m)) t.add_(at::randn_like(t) * 0.3);
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).norm() / b.to(at::kDouble).norm().clamp_min(1e-30)).item<double>();
}

// Logits of `ids` [1, T] one token at a time through the decode state (prefill of `prefill` tokens first).
at::Tensor decode_logits(LlamaForCausalLMImpl& m, const at::Tensor& ids, int64_t prefill) {
  at::NoGradGuard g;
  DecodeState st = m.new_decode_state(ids.size(0));
  std::vector<at::Tensor> outs;
  outs.push_back(m.forward(ids.narrow(1, 0, prefill), st));
  for (int64_t t = prefill; t < ids.size(1); ++t) outs.push_back(m.forward(ids.narrow(1, t, 1), st));
  return at::cat(outs, 1);
}

}  // namespace

TEST_CASE("teacher mode reproduces the original model exactly; distill mode passes the teacher on", "[lawcat]") {
  LlamaForCausalLM m = tiny_model();
  at::Tensor ids = at::randint(0, 61, {2, 37}, at::kLong);
  at::Tensor ref;
  {
    at::NoGradGuard g;
    ref = m->forward(ids);
  }
  config::AttentionConfig a;
  auto swapped = swap_to_lawcat(*m, a);
  CHECK(swapped == std::vector<int64_t>{0, 1, 2});
  set_mixer_mode(*m, MixerMode::kTeacher);
  {
    at::NoGradGuard g;
    CHECK(at::equal(m->forward(ids), ref));
  }
  set_mixer_mode(*m, MixerMode::kDistill);
  at::Tensor out = m->forward(ids);
  CHECK(at::equal(out.detach(), ref));
  // Every layer recorded student and teacher pre-Wo outputs from the same hidden states.
  for (auto& [i, layer] : lawcat_layers(*m)) {
    REQUIRE(layer->last_student().defined());
    CHECK(layer->last_student().sizes() == layer->last_teacher().sizes());
    CHECK(layer->last_student().requires_grad());
    CHECK_FALSE(layer->last_teacher().requires_grad());
  }
}

TEST_CASE("swapped model: finite outputs, gradients only for LAWCAT parameters", "[lawcat]") {
  LlamaForCausalLM m = tiny_model();
  config::AttentionConfig a;
  a.layers = {0, 2};
  swap_to_lawcat(*m, a);
  CHECK(lawcat_layers(*m).size() == 2);
  CHECK(m->layer(1)->softmax_attention() != nullptr);
  at::Tensor ids = at::randint(0, 61, {2, 70}, at::kLong);
  at::Tensor logits = m->forward(ids);
  REQUIRE(at::isfinite(logits).all().item<bool>());
  logits.pow(2).mean().backward();
  int64_t with_grad = 0;
  for (auto& p : m->named_parameters()) {
    bool lawcat = is_lawcat_parameter_name(p.key());
    CAPTURE(p.key());
    CHECK(p.value().requires_grad() == lawcat);
    if (lawcat) {
      REQUIRE(p.value().grad().defined());
      CHECK(at::isfinite(p.value().grad()).all().item<bool>());
      ++with_grad;
    } else {
      CHECK_FALSE(p.value().grad().defined());
    }
  }
  // conv_q, conv_k, feature_map, gate_down, gate_up.{weight,bias} per layer
  CHECK(with_grad == 2 * 6);
}

TEST_CASE("LAWCAT decoding through the recurrent state equals the parallel pass", "[lawcat]") {
  auto conv_width = GENERATE(0, 1, 4);
  auto window = GENERATE(0, 8);
  CAPTURE(conv_width, window);
  LlamaForCausalLM m = tiny_model();
  config::AttentionConfig a;
  a.conv_width = conv_width;
  a.window = window;
  a.conv_on_v = conv_width == 4;
  a.chunk_size = 16;
  swap_to_lawcat(*m, a);
  randomize_lawcat(*m);
  at::Tensor ids = at::randint(0, 61, {2, 45}, at::kLong);
  at::Tensor full;
  {
    at::NoGradGuard g;
    full = m->forward(ids);
  }
  for (int64_t prefill : {1, 20}) {
    CAPTURE(prefill);
    at::Tensor dec = decode_logits(*m, ids, prefill);
    CHECK(rel_err(dec, full) < 1e-5);
  }
  // The recurrent state does not grow with the context (window ring capped at `window`).
  at::NoGradGuard g;
  DecodeState st = m->new_decode_state(2);
  m->forward(ids.narrow(1, 0, 20), st);
  int64_t bytes20 = st.memory_bytes();
  m->forward(ids.narrow(1, 20, 25), st);
  CHECK(st.memory_bytes() == bytes20);
}

TEST_CASE("LAWCAT layer is causal", "[lawcat]") {
  auto window = GENERATE(0, 8);
  LlamaForCausalLM m = tiny_model();
  config::AttentionConfig a;
  a.window = window;
  swap_to_lawcat(*m, a);
  randomize_lawcat(*m);
  at::NoGradGuard g;
  at::Tensor ids = at::randint(0, 61, {1, 50}, at::kLong);
  at::Tensor ids2 = ids.clone();
  ids2.narrow(1, 30, 20).random_(0, 61);
  at::Tensor a1 = m->forward(ids), a2 = m->forward(ids2);
  CHECK(at::allclose(a1.narrow(1, 0, 30), a2.narrow(1, 0, 30), 0, 0));
  CHECK_FALSE(at::allclose(a1.narrow(1, 30, 20), a2.narrow(1, 30, 20)));
}

TEST_CASE("a LAWCAT model saves and reloads exactly", "[lawcat]") {
  LlamaForCausalLM m = tiny_model();
  config::AttentionConfig a;
  a.gate_rank = 5;
  a.layers = {1};
  a.window = 4;
  swap_to_lawcat(*m, a);
  randomize_lawcat(*m);
  auto dir = test::scratch_dir("lawcat_save");
  save_llama(*m, dir / "model");
  LlamaForCausalLM back = load_model(dir / "model");
  REQUIRE(lawcat_layers(*back).size() == 1);
  CHECK(lawcat_layers(*back)[0].second->options().gate_rank == 5);
  CHECK(lawcat_layers(*back)[0].second->options().window == 4);
  at::NoGradGuard g;
  at::Tensor ids = at::randint(0, 61, {1, 33}, at::kLong);
  CHECK(at::equal(back->forward(ids), m->forward(ids)));
  // LAWCAT parameters alone round-trip too.
  save_lawcat_parameters(*m, dir / "lawcat.safetensors");
  for (auto& [n, t] : lawcat_parameters(*back)) t.zero_();
  load_lawcat_parameters(*back, dir / "lawcat.safetensors");
  CHECK(at::equal(back->forward(ids), m->forward(ids)));
}

TEST_CASE("bad attention settings are rejected naming the setting", "[lawcat]") {
  auto expect_error = [](config::AttentionConfig a, const std::string& needle) {
    LlamaForCausalLM m = tiny_model();
    try {
      swap_to_lawcat(*m, a);
      FAIL("expected an error mentioning " << needle);
    } catch (const ConfigError& e) {
      CAPTURE(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  config::AttentionConfig a;
  a.gate_rank = 0;
  expect_error(a, "attention.gate_rank");
  a = {};
  a.layers = {3};
  expect_error(a, "attention.layers: layer index 3 is out of range");
  a = {};
  a.layers = {1, 1};
  expect_error(a, "listed twice");
  a = {};
  a.conv_width = 17;
  expect_error(a, "attention.conv_width");
  a = {};
  a.feature_dim = 13;  // head_dim 12
  expect_error(a, "attention.feature_dim");
  a = {};
  a.gate_init_memory_min = 500;
  a.gate_init_memory_max = 100;
  expect_error(a, "attention.gate_init_memory_min / _max: need 1 < min <= max");
  a.gate_init_memory_max = 0;  // min without max: not silently ignored
  expect_error(a, "attention.gate_init_memory_min / _max: need 1 < min <= max");
  a.gate_init_memory_max = 1000;
  a.gate = false;
  expect_error(a, "attention.gate is off");
}

TEST_CASE("gate bias init: the paper's 0, or memories spread log-uniformly over each half of phi", "[lawcat]") {
  LlamaForCausalLM m = tiny_model();
  config::AttentionConfig a;
  a.layers = {0};
  swap_to_lawcat(*m, a);
  CHECK(lawcat_layers(*m)[0].second->gate_up->bias.abs().max().item<float>() == 0.0f);

  LlamaForCausalLM s = tiny_model();
  a.gate_init_memory_min = 32;
  a.gate_init_memory_max = 4096;
  swap_to_lawcat(*s, a);
  // 2 kv heads x phi 12 (two halves of f = 6). Memory at zero input: -1 / log(alpha), with
  // log(alpha) = logsigmoid(b) / tau, computed here from the stored float biases.
  at::Tensor b = lawcat_layers(*s)[0].second->gate_up->bias.detach().to(at::kDouble).view({2, 2, 6});
  at::Tensor memory = -1.0 / (at::log_sigmoid(b) / a.gate_tau);
  for (int64_t j = 0; j < 6; ++j) {
    const double want = 32.0 * std::pow(4096.0 / 32.0, j / 5.0);
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t half = 0; half < 2; ++half) {
        CAPTURE(j, h, half);
        CHECK(memory[h][half][j].item<double>() == Approx(want).epsilon(1e-3));
      }
  }
}

TEST_CASE("swap on the real stories260K checkpoint", "[lawcat][shared]") {
  LAWCAT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  auto dir = test::scratch_dir("lawcat_stories");
  io::convert_llama2c(bin, bin.parent_path() / "tok512.bin", dir / "hf");
  LlamaForCausalLM m = load_llama(dir / "hf");
  at::Tensor ids = at::randint(3, 512, {1, 128}, at::kLong);
  ids.index_put_({0, 0}, 1);
  at::Tensor ref;
  {
    at::NoGradGuard g;
    ref = m->forward(ids);
  }
  swap_to_lawcat(*m, config::AttentionConfig{});
  REQUIRE(lawcat_layers(*m).size() == 5);
  set_mixer_mode(*m, MixerMode::kTeacher);
  {
    at::NoGradGuard g;
    CHECK(at::equal(m->forward(ids), ref));
  }
  set_mixer_mode(*m, MixerMode::kStudent);
  at::Tensor logits = m->forward(ids);
  REQUIRE(at::isfinite(logits).all().item<bool>());
  at::nll_loss(at::log_softmax(logits[0].slice(0, 0, 127), -1), ids[0].slice(0, 1, 128)).backward();
  for (auto& [n, t] : lawcat_parameters(*m)) {
    CAPTURE(n);
    REQUIRE(t.grad().defined());
    CHECK(at::isfinite(t.grad()).all().item<bool>());
  }
  // Generates through the recurrent state, same tokens as the parallel pass.
  at::Tensor dec = decode_logits(*m, ids.narrow(1, 0, 40), 1);
  at::NoGradGuard g;
  at::Tensor par = m->forward(ids.narrow(1, 0, 40));
  CHECK(at::equal(dec.argmax(-1), par.argmax(-1)));
  CHECK(rel_err(dec, par) < 1e-5);
}
