// Options of a LAWCAT attention layer (docs/architecture.md, "The LAWCAT layer"; the paper, arXiv 2509.18467): the teacher's
// shapes plus the config's attention section itself. Every knob, its default and its range
// check live once, in config::AttentionConfig (config/schema.h); LawcatOptions is that struct
// (so options().gate_rank reads the knob) with the shapes added. Built by
// lawcat_options_from_config: the one place where YAML settings become module options.
#pragma once
#include <cstdint>
#include <string>

#include "config/schema.h"

namespace lawcat::model {

struct LawcatOptions : config::AttentionConfig {
  // Shapes, from the teacher.
  int64_t hidden_size = 0;     // model width
  int64_t num_heads = 0;       // H
  int64_t num_kv_heads = 0;    // Hkv
  int64_t head_dim = 0;        // d

  static constexpr int64_t kMaxConvWidth = 16;

  int64_t f() const { return feature_dim > 0 ? feature_dim : head_dim / 2; }
  int64_t phi_dim() const { return 2 * f(); }  // F
  int64_t group() const { return num_heads / num_kv_heads; }
  // Throws ConfigError naming the setting: the knobs' range checks of config/schema.h (for
  // options built without the YAML reader), then what needs the shapes (feature dim vs head
  // dim, heads vs kv heads, conv width up to kMaxConvWidth).
  void validate() const;
};

// Knobs from the config; shapes from the teacher's config.
LawcatOptions lawcat_options_from_config(const config::AttentionConfig& a, int64_t hidden_size,
                                         int64_t num_heads, int64_t num_kv_heads, int64_t head_dim);

}  // namespace lawcat::model
