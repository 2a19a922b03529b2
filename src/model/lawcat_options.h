// Options of a LAWCAT attention layer (../shared/spec/LAWCAT.md, "The layer").
// Built from a config::AttentionConfig by lawcat_options_from_config: the one
// place where YAML settings become module options.
#pragma once
#include <cstdint>
#include <string>

#include "config/schema.h"

namespace lawcat::model {

struct LawcatOptions {
  // Shapes, from the teacher.
  int64_t hidden_size = 0;     // model width
  int64_t num_heads = 0;       // H
  int64_t num_kv_heads = 0;    // Hkv
  int64_t head_dim = 0;        // d
  // Ablation knobs (defaults = the paper's).
  int64_t conv_width = 4;      // c; 0 = no convolution
  bool conv_on_v = false;
  bool gate = true;
  int64_t gate_rank = 16;      // r
  double gate_tau = 16.0;      // τ
  int64_t feature_dim = 0;     // f (each half of φ); 0 = head_dim / 2. φ has F = 2f dims.
  bool normalize = true;
  bool rope = false;           // RoPE on q, k of the linear path
  int64_t window = 0;          // LoLCATs sliding-window softmax hybrid; 0 = off
  double window_weight_init = 0.1;
  double eps = 1e-10;
  int64_t chunk_size = 64;

  static constexpr int64_t kMaxConvWidth = 16;

  int64_t f() const { return feature_dim > 0 ? feature_dim : head_dim / 2; }
  int64_t phi_dim() const { return 2 * f(); }  // F
  int64_t group() const { return num_heads / num_kv_heads; }
  // Throws ConfigError naming the setting (gate rank 0, feature dim, conv width, ...).
  void validate() const;
};

// Knobs from the config; shapes from the teacher's config.
LawcatOptions lawcat_options_from_config(const config::AttentionConfig& a, int64_t hidden_size,
                                         int64_t num_heads, int64_t num_kv_heads, int64_t head_dim);

}  // namespace lawcat::model
