// Helpers for tests/model: tiny random Llama checkpoints, a naive float64
// Llama written with explicit loops (the oracle: shares no code with
// src/model), error-message checks and the Python finder.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/catch.h"
#include "common/python.h"
#include "common/tiny_llama.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/llama.h"
#include "util/error.h"

namespace lawcat::test {

// 2 layers, hidden 64, 4 heads / 2 kv heads, head_dim 16, vocab 97, llama3 rope
// scaling whose thresholds (wavelengths 8 and 32) put head-dim frequencies in
// all three bands (kept, blended, divided).
inline io::LlamaConfig tiny_config(bool tied) {
  io::LlamaConfig c = tiny_llama_config({97, 64, 112, 2, 16, 128, tied});
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 32;
  return c;
}

// A random model (norm weights randomized too), saved into `dir` with `shards` files.
inline model::LlamaForCausalLM write_tiny_model(const std::filesystem::path& dir, const io::LlamaConfig& c,
                                                int shards, uint64_t seed) {
  at::manual_seed(seed);
  auto m = model::build_llama(c);
  {
    at::NoGradGuard g;
    for (auto& p : m->named_parameters()) {
      if (p.key().find("norm") != std::string::npos) p.value().copy_(1.0 + 0.2 * at::randn_like(p.value()));
      if (p.key().find("embed") != std::string::npos) p.value().mul_(0.5);
    }
  }
  model::save_llama(*m, dir, shards);
  return m;
}

inline std::map<std::string, at::Tensor> load_all_double(const std::filesystem::path& dir) {
  io::WeightSet ws(dir);
  std::map<std::string, at::Tensor> w;
  for (const auto& n : ws.names()) w[n] = ws.load(n, at::kCPU, at::kDouble);
  return w;
}

// inv_freq in double, one element at a time.
inline std::vector<double> naive_inv_freq(const io::LlamaConfig& c) {
  const int64_t D = c.head_dim;
  std::vector<double> f(D / 2);
  const auto& s = c.rope_scaling;
  for (int64_t j = 0; j < D / 2; ++j) {
    double base = 1.0 / std::pow(c.rope_theta, (2.0 * j) / D);
    if (s.type == "linear") base /= s.factor;
    if (s.type == "llama3") {
      const double old_len = s.original_max_position_embeddings;
      const double wavelen = 2 * M_PI / base;
      if (wavelen < old_len / s.high_freq_factor) {
        // high frequency: kept
      } else if (wavelen > old_len / s.low_freq_factor) {
        base /= s.factor;
      } else {
        const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        base = (1 - smooth) * base / s.factor + smooth * base;
      }
    }
    f[j] = base;
  }
  return f;
}

// x [T, D] double: RMSNorm row by row.
inline at::Tensor naive_rmsnorm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor out = at::empty_like(x);
  auto xa = x.accessor<double, 2>();
  auto oa = out.accessor<double, 2>();
  auto wa = w.accessor<double, 1>();
  for (int64_t t = 0; t < x.size(0); ++t) {
    double ss = 0;
    for (int64_t i = 0; i < x.size(1); ++i) ss += xa[t][i] * xa[t][i];
    const double r = 1.0 / std::sqrt(ss / x.size(1) + eps);
    for (int64_t i = 0; i < x.size(1); ++i) oa[t][i] = wa[i] * xa[t][i] * r;
  }
  return out;
}

// Rotates row t of x [T, heads*D] in place. interleaved: pairs (2j, 2j+1)
// (llama2.c / Meta); otherwise pairs (j, j + D/2) (HF).
inline void naive_rope(at::Tensor& x, int64_t heads, int64_t D, const std::vector<double>& inv_freq,
                       bool interleaved) {
  auto a = x.accessor<double, 2>();
  for (int64_t t = 0; t < x.size(0); ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < D / 2; ++j) {
        const double ang = t * inv_freq[j], c = std::cos(ang), s = std::sin(ang);
        const int64_t i1 = h * D + (interleaved ? 2 * j : j);
        const int64_t i2 = h * D + (interleaved ? 2 * j + 1 : j + D / 2);
        const double x1 = a[t][i1], x2 = a[t][i2];
        a[t][i1] = x1 * c - x2 * s;
        a[t][i2] = x2 * c + x1 * s;
      }
    }
  }
}

// Logits [T, V] (double) of one sequence, from HF-named double weights.
inline at::Tensor naive_llama_logits(const std::map<std::string, at::Tensor>& w, const io::LlamaConfig& c,
                                     const std::vector<int64_t>& ids, bool interleaved_rope = false) {
  const int64_t T = static_cast<int64_t>(ids.size()), H = c.num_attention_heads, Hkv = c.num_key_value_heads,
                D = c.head_dim, g = H / Hkv;
  const auto inv_freq = naive_inv_freq(c);
  auto W = [&](const std::string& n) -> const at::Tensor& {
    auto it = w.find(n);
    REQUIRE(it != w.end());
    return it->second;
  };
  at::Tensor x = at::empty({T, c.hidden_size}, at::kDouble);
  for (int64_t t = 0; t < T; ++t) x[t].copy_(W("model.embed_tokens.weight")[ids[t]]);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    at::Tensor h = naive_rmsnorm(x, W(p + "input_layernorm.weight"), c.rms_norm_eps);
    at::Tensor q = at::matmul(h, W(p + "self_attn.q_proj.weight").t()).contiguous();
    at::Tensor k = at::matmul(h, W(p + "self_attn.k_proj.weight").t()).contiguous();
    at::Tensor v = at::matmul(h, W(p + "self_attn.v_proj.weight").t()).contiguous();
    naive_rope(q, H, D, inv_freq, interleaved_rope);
    naive_rope(k, Hkv, D, inv_freq, interleaved_rope);
    at::Tensor y = at::zeros({T, H * D}, at::kDouble);
    auto qa = q.accessor<double, 2>(), ka = k.accessor<double, 2>(), va = v.accessor<double, 2>();
    auto ya = y.accessor<double, 2>();
    for (int64_t hh = 0; hh < H; ++hh) {
      const int64_t kv = hh / g;
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> sc(t + 1);
        double mx = -1e300;
        for (int64_t s = 0; s <= t; ++s) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qa[t][hh * D + d] * ka[s][kv * D + d];
          sc[s] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, sc[s]);
        }
        double z = 0;
        for (auto& e : sc) z += (e = std::exp(e - mx));
        for (int64_t s = 0; s <= t; ++s)
          for (int64_t d = 0; d < D; ++d) ya[t][hh * D + d] += sc[s] / z * va[s][kv * D + d];
      }
    }
    x = x + at::matmul(y, W(p + "self_attn.o_proj.weight").t());
    h = naive_rmsnorm(x, W(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
    at::Tensor gate = at::matmul(h, W(p + "mlp.gate_proj.weight").t());
    at::Tensor up = at::matmul(h, W(p + "mlp.up_proj.weight").t());
    x = x + at::matmul(gate / (1.0 + at::exp(-gate)) * up, W(p + "mlp.down_proj.weight").t());
  }
  x = naive_rmsnorm(x, W("model.norm.weight"), c.rms_norm_eps);
  const std::string head = w.count("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight";
  return at::matmul(x, W(head).t());
}

inline double rel_rms(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  return ((x - y).pow(2).mean().sqrt() / (y.pow(2).mean().sqrt() + 1e-30)).item<double>();
}
inline double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Runs fn, requires it to throw a lawcat::Error (or subclass E) whose full
// (nested) message contains every string in `parts`.
template <typename E = lawcat::Error, typename Fn>
void require_error(Fn&& fn, const std::vector<std::string>& parts) {
  bool threw = false;
  try {
    fn();
  } catch (const E& e) {
    threw = true;
    const std::string msg = lawcat::describe_exception(e);
    INFO("error message: " << msg);
    for (const auto& p : parts) {
      CAPTURE(p);
      CHECK(msg.find(p) != std::string::npos);
    }
  }
  REQUIRE(threw);
}

// A Python with torch, safetensors and transformers (common/python.h's order), or "".
inline std::string find_transformers_python(std::string& tried) {
  return find_python(tried, "torch, safetensors.torch, transformers");
}

inline std::vector<int64_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids(n);
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (auto& id : ids) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    id = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(vocab));
  }
  return ids;
}

}  // namespace lawcat::test
