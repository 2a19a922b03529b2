// llama2.c checkpoints: legacy and version-1 files written here from random
// raw (interleaved-RoPE) weights convert to the same HF tensors, and the
// converted model's logits equal a naive llama2.c-style forward on the raw
// weights (checks the q/k row permutation). Truncated / bad files fail clearly.
#include <cstdio>
#include <cstring>
#include <fstream>

#include "io/llama2c_checkpoint.h"
#include "model/model_helpers.h"

using namespace lawcat;
using namespace lawcat::test;
namespace sfs = std::filesystem;

namespace {
struct Raw {
  int32_t dim = 32, hidden = 48, layers = 2, heads = 4, kv_heads = 2, vocab = 50, seq = 16;
  bool shared = true;
  at::Tensor tok, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;
  int64_t hs() const { return dim / heads; }
  int64_t kv() const { return int64_t(kv_heads) * hs(); }
};

Raw random_raw(bool shared, uint64_t seed) {
  at::manual_seed(seed);
  Raw r;
  r.shared = shared;
  const int64_t D = r.dim, F = r.hidden, L = r.layers, V = r.vocab, KV = r.kv();
  r.tok = at::randn({V, D}) * 0.5;
  r.rms_att = 1 + 0.2 * at::randn({L, D});
  r.wq = at::randn({L, D, D}) / std::sqrt(double(D));
  r.wk = at::randn({L, KV, D}) / std::sqrt(double(D));
  r.wv = at::randn({L, KV, D}) / std::sqrt(double(D));
  r.wo = at::randn({L, D, D}) / std::sqrt(double(D));
  r.rms_ffn = 1 + 0.2 * at::randn({L, D});
  r.w1 = at::randn({L, F, D}) / std::sqrt(double(D));
  r.w2 = at::randn({L, D, F}) / std::sqrt(double(F));
  r.w3 = at::randn({L, F, D}) / std::sqrt(double(D));
  r.rms_final = 1 + 0.2 * at::randn({D});
  r.wcls = shared ? r.tok : at::randn({V, D}) * 0.5;
  return r;
}

void put(std::FILE* f, const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous();
  std::fwrite(c.data_ptr<float>(), 4, c.numel(), f);
}

void write_legacy(const sfs::path& p, const Raw& r) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  int32_t h[7] = {r.dim, r.hidden, r.layers, r.heads, r.kv_heads, r.shared ? r.vocab : -r.vocab, r.seq};
  std::fwrite(h, 4, 7, f);
  for (const auto* t : {&r.tok, &r.rms_att, &r.wq, &r.wk, &r.wv, &r.wo, &r.rms_ffn, &r.w1, &r.w2, &r.w3, &r.rms_final})
    put(f, *t);
  // freq_cis tables as llama2.c's precompute_freqs_cis (theta 1e4).
  at::Tensor freqs = 1.0 / at::pow(10000.0, at::arange(0, r.hs(), 2, at::kDouble) / double(r.hs()));
  at::Tensor ang = at::outer(at::arange(r.seq, at::kDouble), freqs);
  put(f, ang.cos());
  put(f, ang.sin());
  if (!r.shared) put(f, r.wcls);
  std::fclose(f);
}

void write_v1(const sfs::path& p, const Raw& r) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  uint8_t header[256] = {0};
  uint32_t magic = 0x616b3432;
  int32_t version = 1;
  int32_t h[7] = {r.dim, r.hidden, r.layers, r.heads, r.kv_heads, r.vocab, r.seq};
  std::memcpy(header, &magic, 4);
  std::memcpy(header + 4, &version, 4);
  std::memcpy(header + 8, h, 28);
  header[36] = r.shared ? 1 : 0;
  std::fwrite(header, 1, 256, f);
  for (const auto* t : {&r.rms_att, &r.rms_ffn, &r.rms_final, &r.tok, &r.wq, &r.wk, &r.wv, &r.wo, &r.w1, &r.w2, &r.w3})
    put(f, *t);
  if (!r.shared) put(f, r.wcls);
  std::fclose(f);
}

// The raw weights under HF names but NOT permuted (for the interleaved-RoPE oracle).
std::map<std::string, at::Tensor> raw_as_hf(const Raw& r) {
  std::map<std::string, at::Tensor> w;
  auto d = [](const at::Tensor& t) { return t.to(at::kDouble).contiguous(); };
  w["model.embed_tokens.weight"] = d(r.tok);
  for (int l = 0; l < r.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = d(r.rms_att[l]);
    w[p + "self_attn.q_proj.weight"] = d(r.wq[l]);
    w[p + "self_attn.k_proj.weight"] = d(r.wk[l]);
    w[p + "self_attn.v_proj.weight"] = d(r.wv[l]);
    w[p + "self_attn.o_proj.weight"] = d(r.wo[l]);
    w[p + "post_attention_layernorm.weight"] = d(r.rms_ffn[l]);
    w[p + "mlp.gate_proj.weight"] = d(r.w1[l]);
    w[p + "mlp.down_proj.weight"] = d(r.w2[l]);
    w[p + "mlp.up_proj.weight"] = d(r.w3[l]);
  }
  w["model.norm.weight"] = d(r.rms_final);
  if (!r.shared) w["lm_head.weight"] = d(r.wcls);
  return w;
}
}  // namespace

TEST_CASE("llama2c: legacy and v1 files convert to a model equal to llama2.c's forward", "[model][llama2c]") {
  const bool shared = GENERATE(true, false);
  CAPTURE(shared);
  auto dir = scratch_dir(std::string("l2c_") + (shared ? "tied" : "untied"));
  Raw raw = random_raw(shared, shared ? 5 : 6);
  write_legacy(dir / "legacy.bin", raw);
  write_v1(dir / "v1.bin", raw);

  auto legacy = io::read_llama2c(dir / "legacy.bin");
  auto v1 = io::read_llama2c(dir / "v1.bin");
  CHECK(legacy.header.version == 0);
  CHECK(v1.header.version == 1);
  CHECK(legacy.header.shared_classifier == shared);
  CHECK(v1.header.shared_classifier == shared);
  CHECK(legacy.config.tie_word_embeddings == shared);
  CHECK(legacy.config.vocab_size == 50);
  CHECK(legacy.config.max_position_embeddings == 16);
  CHECK(legacy.config.head_dim == 8);
  REQUIRE(legacy.tensors.size() == v1.tensors.size());
  for (size_t i = 0; i < legacy.tensors.size(); ++i) {
    CAPTURE(legacy.tensors[i].first);
    CHECK(legacy.tensors[i].first == v1.tensors[i].first);
    CHECK(at::equal(legacy.tensors[i].second, v1.tensors[i].second));
  }

  io::convert_llama2c(dir / "legacy.bin", "", dir / "hf");
  CHECK(sfs::exists(dir / "hf" / "config.json"));
  CHECK_FALSE(sfs::exists(dir / "hf" / "tokenizer.bin"));
  auto m = model::load_llama(dir / "hf", at::kCPU, at::kFloat);
  CHECK(m->tied() == shared);
  const auto ids = random_ids(16, 50, 3);
  at::Tensor ours;
  {
    at::NoGradGuard g;
    ours = m->forward(at::tensor(ids, at::kLong).unsqueeze(0))[0];
  }
  at::Tensor ref = naive_llama_logits(raw_as_hf(raw), legacy.config, ids, /*interleaved_rope=*/true);
  CAPTURE(rel_rms(ours, ref), max_abs(ours, ref));
  CHECK(rel_rms(ours, ref) < 2e-6);
  // Without the permutation the logits would differ: the oracle is sensitive to it.
  at::Tensor wrong = naive_llama_logits(raw_as_hf(raw), legacy.config, ids, /*interleaved_rope=*/false);
  CHECK(rel_rms(wrong, ref) > 1e-3);
}

TEST_CASE("llama2c: truncated, padded and foreign files fail naming the file", "[model][llama2c][errors]") {
  auto dir = scratch_dir("l2c_bad");
  Raw raw = random_raw(true, 9);
  write_legacy(dir / "ok.bin", raw);
  const auto size = sfs::file_size(dir / "ok.bin");
  sfs::copy_file(dir / "ok.bin", dir / "short.bin");
  sfs::resize_file(dir / "short.bin", size - 10);
  require_error<CheckpointError>([&] { io::read_llama2c(dir / "short.bin"); },
                                 {(dir / "short.bin").string(), "truncated",
                                  "expected " + std::to_string(size) + " bytes, got " + std::to_string(size - 10)});
  sfs::copy_file(dir / "ok.bin", dir / "long.bin");
  sfs::resize_file(dir / "long.bin", size + 8);
  require_error<CheckpointError>([&] { io::read_llama2c(dir / "long.bin"); },
                                 {(dir / "long.bin").string(), "expected " + std::to_string(size) + " bytes"});
  sfs::resize_file(dir / "short.bin", 12);
  require_error<CheckpointError>([&] { io::read_llama2c(dir / "short.bin"); }, {"short.bin", "header"});
  {
    std::ofstream f(dir / "text.bin");
    f << "this is not a llama2.c checkpoint at all, just some text.";
  }
  require_error<CheckpointError>([&] { io::read_llama2c(dir / "text.bin"); }, {"text.bin", "not a valid llama2.c"});
  write_v1(dir / "v2.bin", raw);
  {
    std::FILE* f = std::fopen((dir / "v2.bin").c_str(), "r+b");
    int32_t two = 2;
    std::fseek(f, 4, SEEK_SET);
    std::fwrite(&two, 4, 1, f);
    std::fclose(f);
  }
  require_error<CheckpointError>([&] { io::read_llama2c(dir / "v2.bin"); }, {"v2.bin", "version 2"});
  require_error<CheckpointError>([&] { io::read_llama2c(dir / "absent.bin"); }, {"absent.bin", "does not exist"});
}
