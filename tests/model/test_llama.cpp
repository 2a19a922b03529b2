// The Llama teacher: HF parameter names, logits vs a naive float64 oracle
// (single-file and sharded checkpoints, tied and untied heads, llama3 RoPE
// scaling), KV-cache decoding vs the full forward, the swappable token mixer.
#include <set>

#include "model/model_helpers.h"

using namespace lawcat;
using namespace lawcat::test;

namespace {
at::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<at::Tensor> t;
  for (const auto& r : rows) t.push_back(at::tensor(r, at::kLong));
  return at::stack(t);  // [B, T]
}
}  // namespace

TEST_CASE("llama: parameter names are the Hugging Face names", "[model]") {
  for (bool tied : {false, true}) {
    CAPTURE(tied);
    auto m = model::build_llama(tiny_config(tied));
    std::set<std::string> names;
    for (auto& p : m->named_parameters()) names.insert(p.key());
    std::set<std::string> expected = {"model.embed_tokens.weight", "model.norm.weight"};
    if (!tied) expected.insert("lm_head.weight");
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      for (const char* n : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                            "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                            "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"})
        expected.insert(p + n);
    }
    CHECK(names == expected);
    auto attn = m->layer(1)->softmax_attention();
    REQUIRE(attn);
    CHECK(attn->k_proj->weight.sizes() == at::IntArrayRef({32, 64}));
    CHECK(attn->q_proj->weight.sizes() == at::IntArrayRef({64, 64}));
  }
}

TEST_CASE("llama: loaded logits match a naive float64 Llama", "[model]") {
  const bool tied = GENERATE(false, true);
  const int shards = GENERATE(1, 3);
  CAPTURE(tied, shards);
  auto dir = scratch_dir("naive_" + std::to_string(tied) + "_" + std::to_string(shards));
  const auto cfg = tiny_config(tied);
  write_tiny_model(dir, cfg, shards, 7 + tied);
  if (shards > 1) REQUIRE(std::filesystem::exists(dir / "model.safetensors.index.json"));

  auto m = model::load_llama(dir, at::kCPU, at::kFloat);
  const auto w = load_all_double(dir);
  // T = 45 reaches positions beyond original_max_position_embeddings (32).
  const auto a = random_ids(45, cfg.vocab_size, 1), b = random_ids(45, cfg.vocab_size, 2);
  at::Tensor logits;
  {
    at::NoGradGuard g;
    logits = m->forward(ids_tensor({a, b}));  // [2, 45, 97]
  }
  REQUIRE(logits.sizes() == at::IntArrayRef({2, 45, 97}));
  for (int row = 0; row < 2; ++row) {
    at::Tensor ref = naive_llama_logits(w, cfg, row ? b : a);
    CAPTURE(row, rel_rms(logits[row], ref), max_abs(logits[row], ref));
    CHECK(rel_rms(logits[row], ref) < 2e-6);
    CHECK(max_abs(logits[row], ref) < 1e-4);
  }
}

TEST_CASE("llama: KV-cache decoding equals the full forward", "[model]") {
  const bool tied = GENERATE(false, true);
  CAPTURE(tied);
  at::manual_seed(11);
  auto m = model::build_llama(tiny_config(tied));
  m->eval();
  at::NoGradGuard g;
  const int64_t T = 40;
  at::Tensor ids = ids_tensor({random_ids(T, 97, 3), random_ids(T, 97, 4)});  // [2, T]
  at::Tensor full = m->forward(ids);                                        // [2, T, V]

  // Prefill 5, a chunk of 9 on top of the cache (past > 0, T > 1), then one token at a time.
  model::DecodeState st = m->new_decode_state(2);
  REQUIRE(st.layers.size() == 2);
  std::vector<at::Tensor> parts;
  parts.push_back(m->forward(ids.narrow(1, 0, 5), st));
  CHECK(st.position == 5);
  parts.push_back(m->forward(ids.narrow(1, 5, 9), st));
  const int64_t mem14 = st.memory_bytes();
  for (int64_t t = 14; t < T; ++t) parts.push_back(m->forward(ids.narrow(1, t, 1), st));
  CHECK(st.position == T);
  CHECK(st.memory_bytes() >= mem14);
  auto* cache = dynamic_cast<model::KVCache*>(st.layers[0].get());
  REQUIRE(cache);
  CHECK(cache->length() == T);
  at::Tensor stepped = at::cat(parts, 1);
  CAPTURE(max_abs(stepped, full));
  CHECK(max_abs(stepped, full) < 1e-4);
}

TEST_CASE("llama: a static KV cache (the CUDA-graph decode's) steps like the growing one", "[model]") {
  at::manual_seed(12);
  auto m = model::build_llama(tiny_config(false));
  m->eval();
  at::NoGradGuard g;
  const int64_t T = 30, P = 12;
  at::Tensor ids = ids_tensor({random_ids(T, 97, 5), random_ids(T, 97, 6)});  // [2, T]
  at::Tensor full = m->forward(ids);                                        // [2, T, V]

  model::DecodeState st = m->new_decode_state(2);
  std::vector<at::Tensor> parts{m->forward(ids.narrow(1, 0, P), st)};
  model::make_kv_caches_static(st, T);
  REQUIRE(st.device_position.defined());
  CHECK(st.device_position.item<int64_t>() == P);
  auto* fixed = dynamic_cast<model::StaticKVCache*>(st.layers[1].get());
  REQUIRE(fixed);
  CHECK(fixed->capacity() == T);
  const int64_t bytes = st.memory_bytes();
  for (int64_t t = P; t < T; ++t) {
    st.position = P;  // as in a graph replay, where the host counter stays at the capture's
    parts.push_back(m->forward(ids.narrow(1, t, 1), st));
  }
  // RoPE's row and the cache slot came from the device position, which the step advanced.
  CHECK(st.device_position.item<int64_t>() == T);
  CHECK(st.memory_bytes() == bytes);  // nothing grows
  at::Tensor stepped = at::cat(parts, 1);
  CAPTURE(max_abs(stepped, full));
  CHECK(max_abs(stepped, full) < 1e-4);

  // More than one token per step is refused; so are a sliding-window cache and too small a capacity.
  require_error<c10::Error>([&] { m->forward(ids.narrow(1, 0, 2), st); }, {"one unpadded token per call"});
  model::DecodeState w = m->new_decode_state(1);
  m->forward(ids.narrow(0, 0, 1).narrow(1, 0, 4), w);
  require_error<c10::Error>([&] { model::make_kv_caches_static(w, 3); }, {"capacity 3", "4 positions"});
  w.layers[1] = std::make_unique<model::KVCache>(8);  // the last layer: layer 0 must not be converted first
  require_error<c10::Error>([&] { model::make_kv_caches_static(w, 16); }, {"layer 1", "sliding window"});
  CHECK(dynamic_cast<model::KVCache*>(w.layers[0].get()));  // a refused state is left as it was
  CHECK_FALSE(w.device_position.defined());
}

TEST_CASE("llama: attention_output is the pre-o_proj softmax output", "[model]") {
  at::manual_seed(5);
  auto m = model::build_llama(tiny_config(false));
  at::NoGradGuard g;
  at::Tensor h = at::randn({2, 11, 64});
  auto ctx = m->mixer_context(0, 11);
  auto attn = m->layer(0)->softmax_attention();
  at::Tensor y = attn->attention_output(h, ctx);  // [2, 11, 64]
  REQUIRE(y.sizes() == at::IntArrayRef({2, 11, 64}));
  CHECK(max_abs(attn->o_proj(y), attn->forward(h, ctx)) < 1e-6);
  // Position 0 attends to itself only: y[:, 0] = v(h[:, 0]) for each head's kv head.
  at::Tensor v = attn->v_proj(h.select(1, 0)).view({2, 2, 16});                // [B, Hkv, D]
  at::Tensor expect = v.repeat_interleave(2, 1).reshape({2, 64});              // [B, H*D]
  CHECK(max_abs(y.select(1, 0), expect) < 1e-5);
}

namespace {
// A stand-in mixer (what the LAWCAT swap does): one parameter, output = x * scale.
class ScaleMixer : public model::TokenMixer {
 public:
  ScaleMixer() { scale = register_parameter("scale", at::full({1}, 0.5)); }
  at::Tensor forward(const at::Tensor& x, const model::MixerContext&) override { return x * scale; }
  std::unique_ptr<model::LayerState> make_state(int64_t) const override { return nullptr; }
  std::string kind() const override { return "scale"; }
  at::Tensor scale;
};
}  // namespace

TEST_CASE("llama: the token mixer can be swapped, names stay HF-like", "[model]") {
  at::manual_seed(3);
  auto m = model::build_llama(tiny_config(true));
  at::NoGradGuard g;
  at::Tensor ids = ids_tensor({random_ids(8, 97, 9)});
  at::Tensor before = m->forward(ids);
  m->layer(1)->set_mixer(std::make_shared<ScaleMixer>());
  CHECK_FALSE(m->layer(1)->softmax_attention());
  CHECK(m->layer(0)->softmax_attention());
  CHECK(m->layer(1)->self_attn->kind() == "scale");
  std::set<std::string> names;
  for (auto& p : m->named_parameters()) names.insert(p.key());
  CHECK(names.count("model.layers.1.self_attn.scale"));
  CHECK_FALSE(names.count("model.layers.1.self_attn.q_proj.weight"));
  CHECK(names.count("model.layers.0.self_attn.q_proj.weight"));
  at::Tensor after = m->forward(ids);
  CHECK(after.sizes() == before.sizes());
  CHECK(max_abs(after, before) > 1e-3);
  // Saving and loading through load_weights keeps the swapped names.
  auto dir = scratch_dir("swapped");
  model::save_llama(*m, dir);
  auto m2 = model::build_llama(tiny_config(true));
  m2->layer(1)->set_mixer(std::make_shared<ScaleMixer>());
  model::LoadWeightsOptions opt;
  model::load_weights(*m2, dir, opt);
  CHECK(max_abs(m2->forward(ids), after) == 0);
}

TEST_CASE("llama: load_weights can leave named parameters optional", "[model]") {
  auto dir = scratch_dir("optional");
  write_tiny_model(dir, tiny_config(false), 1, 21);
  auto m = model::build_llama(tiny_config(false));
  m->layer(0)->set_mixer(std::make_shared<ScaleMixer>());
  model::LoadWeightsOptions opt;
  opt.dtype = at::kDouble;
  require_error<CheckpointError>([&] { model::load_weights(*m, dir, opt); },
                                 {"missing tensor model.layers.0.self_attn.scale", "expected shape [1]"});
  opt.optional = [](const std::string& n) { return n.find(".scale") != std::string::npos; };
  model::load_weights(*m, dir, opt);
  CHECK(m->dtype() == at::kDouble);
  auto* mixer = dynamic_cast<ScaleMixer*>(m->layer(0)->self_attn.get());
  REQUIRE(mixer);
  CHECK(mixer->scale.scalar_type() == at::kDouble);
  CHECK(mixer->scale.item<double>() == 0.5);
}

TEST_CASE("llama: bfloat16 model stays close to float32", "[model]") {
  auto dir = scratch_dir("bf16");
  write_tiny_model(dir, tiny_config(false), 1, 31);
  auto m32 = model::load_llama(dir, at::kCPU, at::kFloat);
  auto m16 = model::load_llama(dir, at::kCPU, at::kBFloat16);
  CHECK(m16->dtype() == at::kBFloat16);
  at::NoGradGuard g;
  at::Tensor ids = ids_tensor({random_ids(20, 97, 5)});
  at::Tensor a = m32->forward(ids), b = m16->forward(ids);
  CHECK(b.scalar_type() == at::kBFloat16);
  CAPTURE(rel_rms(b, a));
  CHECK(rel_rms(b, a) < 0.05);
}

TEST_CASE("llama: save_llama round-trips config and weights", "[model]") {
  auto dir = scratch_dir("roundtrip");
  auto cfg = tiny_config(false);
  auto m = write_tiny_model(dir, cfg, 1, 41);
  auto back = io::load_llama_config(dir / "config.json");
  CHECK(back.rope_scaling.type == "llama3");
  CHECK(back.num_key_value_heads == 2);
  CHECK(back.tie_word_embeddings == false);
  auto m2 = model::load_llama(dir, at::kCPU, at::kFloat);
  auto p1 = m->named_parameters(), p2 = m2->named_parameters();
  REQUIRE(p1.size() == p2.size());
  for (auto& p : p1) CHECK(at::equal(p.value(), p2[p.key()]));
}
