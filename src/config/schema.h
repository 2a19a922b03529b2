// Typed run configuration. YAML keys = struct fields; each section lists its
// fields once in visit(), which the YAML reader, the writer and the JSON
// export all use. Defaults are the paper's (LAWCAT, Liu et al., Findings of
// EMNLP 2025, arXiv 2509.18467; docs/architecture.md, "The LAWCAT layer").
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lawcat::config {

// Range checks attached to fields in visit(); each returns an error text or "".
namespace check {
inline std::string positive(double v) { return v > 0 ? "" : "must be > 0"; }
inline std::string non_negative(double v) { return v >= 0 ? "" : "must be >= 0"; }
inline std::string probability(double v) { return v >= 0 && v < 1 ? "" : "must be in [0, 1)"; }
inline std::string fraction(double v) { return v > 0 && v < 1 ? "" : "must be in (0, 1)"; }
}  // namespace check

// LAWCAT layer settings (every ablation knob of the spec).
struct AttentionConfig {
  std::string kind = "lawcat";          // "lawcat" or "softmax" (no swap)
  std::vector<int64_t> layers;          // layer indices to swap; empty = all layers
  int64_t conv_width = 4;               // c; 0 = no convolution
  bool conv_on_v = false;
  bool gate = true;
  int64_t gate_rank = 16;               // r
  double gate_tau = 16.0;               // τ
  // Gate bias init, an ablation outside the paper (which starts every bias at 0, α ≈ 0.957):
  // with max > 0 the biases of each half of φ start spread so that the gate's memory
  // −1 / log α at zero input runs log-uniformly from min to max tokens across its features.
  double gate_init_memory_min = 0;
  double gate_init_memory_max = 0;      // 0 = the paper's bias 0
  int64_t feature_dim = 0;              // f per half of φ; 0 = head_dim / 2
  bool normalize = true;
  bool rope = false;                    // RoPE on the linear path (ablation)
  int64_t window = 0;                   // sliding softmax window (LoLCATs hybrid: 64); 0 = off
  double window_weight_init = 0.1;      // σ(w_h) at init
  double eps = 1e-10;
  int64_t chunk_size = 64;
  template <class V> void visit(V& v) {
    v("kind", kind, [](const std::string& s) {
      return s == "lawcat" || s == "softmax" ? "" : "must be 'lawcat' or 'softmax'";
    });
    v("layers", layers);
    v("conv_width", conv_width, check::non_negative);
    v("conv_on_v", conv_on_v);
    v("gate", gate);
    v("gate_rank", gate_rank, check::positive);
    v("gate_tau", gate_tau, check::positive);
    v("gate_init_memory_min", gate_init_memory_min, check::non_negative);
    v("gate_init_memory_max", gate_init_memory_max, check::non_negative);
    v("feature_dim", feature_dim, check::non_negative);
    v("normalize", normalize);
    v("rope", rope);
    v("window", window, check::non_negative);
    v("window_weight_init", window_weight_init, check::fraction);
    v("eps", eps, check::positive);
    v("chunk_size", chunk_size, check::positive);
  }
};

// The gate_init_memory pair's problem, or "": both 0 (the paper's init), or a spread with the
// gate on and 1 < min <= max finite (config::validate and the layer both ask).
inline std::string gate_init_problem(const AttentionConfig& a) {
  const double lo = a.gate_init_memory_min, hi = a.gate_init_memory_max;
  if (lo == 0 && hi == 0) return "";
  std::string got = " (got " + std::to_string(lo) + " / " + std::to_string(hi) + ")";
  if (!a.gate) return "attention.gate_init_memory_min / _max: set, but attention.gate is off" + got;
  if (!(lo > 1 && lo <= hi && hi < 1e300))
    return "attention.gate_init_memory_min / _max: need 1 < min <= max tokens, finite (both 0: the paper's init)" + got;
  return "";
}

// A small softmax teacher trained from scratch (pretrain stage) when no weights
// are on the machine. Shapes of a llama2.c-style model; the tokenizer is a BPE
// learned from the training text unless `tokenizer` names a directory with one.
struct ScratchModelConfig {
  int64_t hidden_size = 64;
  int64_t intermediate_size = 172;
  int64_t num_layers = 4;
  int64_t num_heads = 8;
  int64_t num_kv_heads = 4;
  int64_t max_position = 0;             // 0 = data.seq_len
  double rope_theta = 10000.0;
  double init_std = 0.02;               // N(0, init_std) for every matrix and the embedding
  std::string tokenizer;                // tokenizer directory; empty = train a llama2.c BPE on data.train
  int64_t vocab_size = 512;             // of the trained BPE
  template <class V> void visit(V& v) {
    v("hidden_size", hidden_size, check::positive);
    v("intermediate_size", intermediate_size, check::positive);
    v("num_layers", num_layers, check::positive);
    v("num_heads", num_heads, check::positive);
    v("num_kv_heads", num_kv_heads, check::positive);
    v("max_position", max_position, check::non_negative);
    v("rope_theta", rope_theta, check::positive);
    v("init_std", init_std, check::positive);
    v("tokenizer", tokenizer);
    v("vocab_size", vocab_size, [](double x) { return x >= 260 ? "" : "must be >= 260 (3 special + 256 byte tokens + 1)"; });
  }
};

// The teacher. Exactly one source: `path` (HF-layout directory), `llama2c` (a
// llama2.c .bin converted on the fly into <output_dir>/teacher), or neither with
// pretrain.enabled (a model built from `scratch` and trained first).
struct ModelConfig {
  std::string path;                     // HF-layout checkpoint directory (teacher)
  std::string llama2c;                  // llama2.c checkpoint (.bin)
  std::string llama2c_tokenizer;        // its tokenizer.bin (llama2.c format)
  std::string dtype = "auto";           // frozen weights: auto (bf16 on GPU, fp32 on CPU), bf16, fp16, fp32
  ScratchModelConfig scratch;
  template <class V> void visit(V& v) {
    v("path", path);
    v("llama2c", llama2c);
    v("llama2c_tokenizer", llama2c_tokenizer);
    v("dtype", dtype, [](const std::string& s) {
      return s == "auto" || s == "bf16" || s == "fp16" || s == "fp32" ? ""
                                                                       : "must be auto, bf16, fp16 or fp32";
    });
    v("scratch", scratch);
  }
};

struct DataConfig {
  std::vector<std::string> train;       // files or folders: .txt, .jsonl, Alpaca .json
  std::vector<std::string> validation;  // optional; else a held-out split of train
  std::string format = "auto";          // auto, text, jsonl, alpaca
  std::string text_field = "text";      // JSONL field
  std::string separator;                // text: "" = documents end at blank lines; else at lines equal to this (fortune: "%")
  bool add_bos = true;                  // BOS before each document (when the tokenizer has one)
  bool add_eos = true;                  // EOS after each document
  int64_t seq_len = 1024;
  double val_fraction = 0.02;
  int64_t max_tokens = 0;               // 0 = all
  int64_t shuffle_seed = 0;
  std::string cache_dir;                // tokenized cache; empty = <output_dir>/cache
  template <class V> void visit(V& v) {
    v("train", train);
    v("validation", validation);
    v("format", format, [](const std::string& s) {
      return s == "auto" || s == "text" || s == "jsonl" || s == "alpaca" ? ""
                                                                          : "must be auto, text, jsonl or alpaca";
    });
    v("text_field", text_field);
    v("separator", separator);
    v("add_bos", add_bos);
    v("add_eos", add_eos);
    v("seq_len", seq_len, check::positive);
    v("val_fraction", val_fraction, check::probability);
    v("max_tokens", max_tokens, check::non_negative);
    v("shuffle_seed", shuffle_seed);
    v("cache_dir", cache_dir);
  }
};

struct SchedulerConfig {                // ReduceLROnPlateau on the validation loss
  double factor = 0.1;
  int64_t patience = 10;
  double min_lr = 1e-5;
  template <class V> void visit(V& v) {
    v("factor", factor, check::fraction);
    v("patience", patience, check::non_negative);
    v("min_lr", min_lr, check::non_negative);
  }
};

// One training stage: stage 1 (distill), stage 2 (lora) or full training (pretrain).
struct StageConfig {
  bool enabled = true;
  int64_t steps = 100;                  // optimizer steps
  int64_t batch_size = 1;
  int64_t grad_accum = 8;
  double lr = 1e-2;
  double weight_decay = 0.0;
  double max_grad_norm = 0.0;           // 0 = no clipping
  double warmup_steps = 0;
  SchedulerConfig scheduler;
  int64_t eval_every = 10;              // steps between validation passes
  int64_t val_batches = 8;
  int64_t save_every = 0;               // 0 = at each eval
  int64_t keep_last = 2;
  double loss_scale = 1000.0;           // stage 1: MSE × this
  // stage 2 (LoRA)
  int64_t lora_rank = 8;
  double lora_alpha = 16.0;
  double lora_dropout = 0.0;
  std::vector<std::string> lora_targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  std::vector<int64_t> lora_layers;     // decoder layers that get adapters; empty = all
  bool train_lawcat = false;            // stage 2: also train the LAWCAT parameters
  // This stage's training files instead of data.train (empty: data.train); tokenized and split
  // with the data section's other keys (data.validation, when set, stays shared).
  std::vector<std::string> data;
  template <class V> void visit(V& v) {
    v("enabled", enabled);
    v("steps", steps, check::non_negative);
    v("batch_size", batch_size, check::positive);
    v("grad_accum", grad_accum, check::positive);
    v("lr", lr, check::positive);
    v("weight_decay", weight_decay, check::non_negative);
    v("max_grad_norm", max_grad_norm, check::non_negative);
    v("warmup_steps", warmup_steps, check::non_negative);
    v("scheduler", scheduler);
    v("eval_every", eval_every, check::positive);
    v("val_batches", val_batches, check::positive);
    v("save_every", save_every, check::non_negative);
    v("keep_last", keep_last, check::positive);
    v("loss_scale", loss_scale, check::positive);
    v("lora_rank", lora_rank, check::positive);
    v("lora_alpha", lora_alpha, check::positive);
    v("lora_dropout", lora_dropout, check::probability);
    v("lora_targets", lora_targets);
    v("lora_layers", lora_layers);
    v("train_lawcat", train_lawcat);
    v("data", data);
  }
};

struct RunConfig {
  std::string output_dir = "runs/default";
  int64_t seed = 0;
  std::string device = "auto";          // auto, cpu, cuda, cuda:N
  int64_t threads = 0;                  // CPU threads; 0 = all cores
  ModelConfig model;
  AttentionConfig attention;
  DataConfig data;
  StageConfig pretrain = [] { StageConfig s; s.enabled = false; s.lr = 1e-3; s.grad_accum = 1; return s; }();
  StageConfig distill;                  // stage 1 defaults: lr 1e-2, accum 8, MSE × 1000
  StageConfig lora = [] { StageConfig s; s.lr = 1e-4; return s; }();
  std::string export_dir;               // empty = <output_dir>/export
  std::string export_dtype = "auto";    // auto (the teacher's torch_dtype), fp32, bf16, fp16
  // `key=value` overrides applied when the teacher named by model.path /
  // model.llama2c is not on this machine (e.g. train a small teacher instead).
  std::vector<std::string> fallback;
  template <class V> void visit(V& v) {
    v("output_dir", output_dir);
    v("seed", seed);
    v("device", device);
    v("threads", threads, check::non_negative);
    v("model", model);
    v("attention", attention);
    v("data", data);
    v("pretrain", pretrain);
    v("distill", distill);
    v("lora", lora);
    v("export_dir", export_dir);
    v("export_dtype", export_dtype, [](const std::string& s) {
      return s == "auto" || s == "bf16" || s == "fp16" || s == "fp32" ? "" : "must be auto, bf16, fp16 or fp32";
    });
    v("fallback", fallback);
  }
};

}  // namespace lawcat::config
