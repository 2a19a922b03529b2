#include "io/llama2c_checkpoint.h"

#include <unistd.h>

#include <cmath>
#include <cstring>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::io {
namespace stdfs = std::filesystem;

namespace {
// Sequential reader of fp32 tensors from the mapped file.
struct Cursor {
  const uint8_t* data;
  size_t offset;
  at::Tensor take(std::vector<int64_t> shape) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    at::Tensor t = at::empty(shape, at::kFloat);
    std::memcpy(t.data_ptr<float>(), data + offset, static_cast<size_t>(n) * 4);
    offset += static_cast<size_t>(n) * 4;
    return t;
  }
  void skip(int64_t floats) { offset += static_cast<size_t>(floats) * 4; }
};
}  // namespace

at::Tensor llama2c_permute_rope_rows(const at::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  TORCH_CHECK(rows % (2 * heads) == 0, "llama2c_permute_rope_rows: ", rows, " rows not divisible by 2 * ",
              heads, " heads");
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols}).contiguous();
}

Llama2cModel read_llama2c(const stdfs::path& bin) {
  const std::string where = bin.string();
  LAWCAT_CHECK(stdfs::exists(bin), CheckpointError, "llama2.c checkpoint " << where << " does not exist");
  fs::MappedFile file(bin);
  const Llama2cLayout layout = parse_llama2c_layout(file.data(), file.size(), where);
  Llama2cModel out;
  const Llama2cHeader& h = out.header = layout.header;
  const size_t offset = layout.data_offset;
  const int64_t D = h.dim, F = h.hidden_dim, L = h.n_layers, V = h.vocab_size, S = h.seq_len,
                hs = h.head_size(), KV = int64_t(h.n_kv_heads) * hs;

  // Read in file order.
  Cursor c{file.data(), offset};
  at::Tensor tok_emb, rms_att, rms_ffn, rms_final, wq, wk, wv, wo, w1, w2, w3, wcls;
  if (h.version == 0) {
    tok_emb = c.take({V, D});
    rms_att = c.take({L, D});
    wq = c.take({L, D, D});
    wk = c.take({L, KV, D});
    wv = c.take({L, KV, D});
    wo = c.take({L, D, D});
    rms_ffn = c.take({L, D});
    w1 = c.take({L, F, D});
    w2 = c.take({L, D, F});
    w3 = c.take({L, F, D});
    rms_final = c.take({D});
    at::Tensor freq_real = c.take({S, hs / 2});
    c.skip(S * hs / 2);  // freq_cis_imag
    // The tables must be theta = 10000 RoPE, the only kind llama2.c writes.
    if (S > 1) {
      at::Tensor j = at::arange(hs / 2, at::kDouble);
      at::Tensor expect = at::cos(at::pow(10000.0, -2.0 * j / static_cast<double>(hs)));  // position 1
      double err = (freq_real[1].to(at::kDouble) - expect).abs().max().item<double>();
      if (err > 1e-4) log::warn(where, ": freq_cis tables do not match RoPE theta 10000 (max error ", err, ")");
    }
  } else {
    rms_att = c.take({L, D});
    rms_ffn = c.take({L, D});
    rms_final = c.take({D});
    tok_emb = c.take({V, D});
    wq = c.take({L, D, D});
    wk = c.take({L, KV, D});
    wv = c.take({L, KV, D});
    wo = c.take({L, D, D});
    w1 = c.take({L, F, D});
    w2 = c.take({L, D, F});
    w3 = c.take({L, F, D});
  }
  if (!h.shared_classifier) wcls = c.take({V, D});

  // HF config.
  LlamaConfig& cfg = out.config;
  cfg.architecture = "LlamaForCausalLM";
  cfg.vocab_size = V;
  cfg.hidden_size = D;
  cfg.intermediate_size = F;
  cfg.num_hidden_layers = L;
  cfg.num_attention_heads = h.n_heads;
  cfg.num_key_value_heads = h.n_kv_heads;
  cfg.head_dim = hs;
  cfg.rms_norm_eps = 1e-5;
  cfg.rope_theta = 10000.0;
  cfg.tie_word_embeddings = h.shared_classifier;
  cfg.max_position_embeddings = S;
  cfg.bos_token_id = 1;
  cfg.eos_token_id = 2;
  cfg.torch_dtype = "float32";

  // HF tensors.
  auto& t = out.tensors;
  t.emplace_back("model.embed_tokens.weight", tok_emb);
  for (int64_t l = 0; l < L; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    t.emplace_back(pre + "self_attn.q_proj.weight", llama2c_permute_rope_rows(wq[l], h.n_heads));
    t.emplace_back(pre + "self_attn.k_proj.weight", llama2c_permute_rope_rows(wk[l], h.n_kv_heads));
    t.emplace_back(pre + "self_attn.v_proj.weight", wv[l].contiguous());
    t.emplace_back(pre + "self_attn.o_proj.weight", wo[l].contiguous());
    t.emplace_back(pre + "mlp.gate_proj.weight", w1[l].contiguous());
    t.emplace_back(pre + "mlp.down_proj.weight", w2[l].contiguous());
    t.emplace_back(pre + "mlp.up_proj.weight", w3[l].contiguous());
    t.emplace_back(pre + "input_layernorm.weight", rms_att[l].contiguous());
    t.emplace_back(pre + "post_attention_layernorm.weight", rms_ffn[l].contiguous());
  }
  t.emplace_back("model.norm.weight", rms_final);
  if (!h.shared_classifier) t.emplace_back("lm_head.weight", wcls);
  return out;
}

namespace {
// Files a model directory may hold (what convert, export and the recipe write,
// and the usual Hugging Face companions). Anything else blocks a replacement.
bool model_dir_file(const std::string& n) {
  static const char* const known[] = {"config.json",           "model.safetensors",      "model.safetensors.index.json",
                                      "tokenizer.bin",         "tokenizer.json",         "tokenizer.model",
                                      "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                                      "source.json"};
  for (const char* k : known)
    if (n == k) return true;
  return n.rfind("model-", 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0;
}
}  // namespace

void convert_llama2c(const stdfs::path& bin, const stdfs::path& tokenizer_bin, const stdfs::path& out_dir_arg,
                     const TokenizerCheck& check_tokenizer) {
  // "out/" names the folder "out".
  const stdfs::path out_dir = out_dir_arg.has_filename() ? out_dir_arg : out_dir_arg.parent_path();
  LAWCAT_CHECK(!out_dir.empty() && out_dir.filename() != "." && out_dir.filename() != "..", Error,
               "--out " << out_dir_arg.string() << ": name the model directory itself (it is replaced as a whole)");
  // ---- validate everything before writing anything ----
  Llama2cModel m = read_llama2c(bin);
  std::string tokenizer_bytes;
  if (!tokenizer_bin.empty()) {
    LAWCAT_CHECK(stdfs::is_regular_file(tokenizer_bin), DataError,
                 "tokenizer file " << tokenizer_bin.string() << " does not exist");
    tokenizer_bytes = fs::read_text(tokenizer_bin);
    if (check_tokenizer) check_tokenizer(tokenizer_bin, m.config);
  }
  std::error_code ec;
  if (stdfs::exists(out_dir, ec)) {
    LAWCAT_CHECK(stdfs::is_directory(out_dir, ec), Error,
                 out_dir.string() << ": exists and is not a directory; nothing was written");
    std::string others;
    int n_others = 0;
    for (const auto& e : stdfs::directory_iterator(out_dir)) {
      const std::string n = e.path().filename().string();
      if (model_dir_file(n)) continue;
      if (n_others++ < 5) others += (others.empty() ? "" : ", ") + n;
    }
    LAWCAT_CHECK(n_others == 0, Error,
                 out_dir.string() << " holds files that are not part of a model directory (" << others
                                  << (n_others > 5 ? ", ..." : "")
                                  << "); convert replaces the whole directory: choose a new or empty one. "
                                     "Nothing was written");
  }
  // ---- write a complete directory beside the target, then swap it in ----
  const stdfs::path parent = out_dir.parent_path();
  if (!parent.empty()) stdfs::create_directories(parent);
  const stdfs::path tmp =
      (parent.empty() ? stdfs::path(".") : parent) / (".tmp-" + out_dir.filename().string() + "-" + std::to_string(::getpid()));
  fs::remove_tree(tmp, ec);
  try {
    stdfs::create_directories(tmp);
    save_weight_set(tmp, m.tensors);
    save_llama_config(tmp / "config.json", m.config);
    if (!tokenizer_bin.empty()) fs::atomic_write_text(tmp / "tokenizer.bin", tokenizer_bytes);
    fs::sync_dir(tmp);
    fs::replace_dir(tmp, out_dir);
  } catch (const std::exception& e) {
    fs::remove_tree(tmp, ec);
    throw Error("could not write " + out_dir.string() + ": " + describe_exception(e) +
                " (an existing " + out_dir.filename().string() + " is left as it was)");
  }
  int64_t params = 0;
  for (auto& [n, t] : m.tensors) params += t.numel();
  log::info("converted ", bin.string(), " (llama2.c ", m.header.version == 0 ? "legacy" : "v1", ", ",
            params, " parameters, ", m.header.shared_classifier ? "tied" : "untied", " classifier) to ",
            out_dir.string());
}

}  // namespace lawcat::io
