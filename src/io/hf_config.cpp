// config.json reader / writer for Llama-family decoders (see hf_config.h).
#include "io/hf_config.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "util/error.h"
#include "util/fs.h"

namespace lawcat::io {
namespace {
using nlohmann::json;

std::string show(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return std::string(v.type_name()) + " " + s;
}

// Typed access to one JSON object; `prefix` names nested objects ("rope_scaling.").
class Reader {
 public:
  Reader(const json& j, const std::string& where, std::string prefix = "")
      : j_(j), where_(where), prefix_(std::move(prefix)) {}

  // nullptr when absent or null.
  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }
  [[noreturn]] void fail(const char* key, const std::string& problem) const {
    throw CheckpointError(where_ + ": key '" + prefix_ + key + "' " + problem);
  }
  const json& require(const char* key) const {
    const json* v = find(key);
    if (!v) {
      throw CheckpointError(where_ + ": missing required key '" + prefix_ + key + "'" +
                            (j_.contains(key) ? " (it is null)" : ""));
    }
    return *v;
  }

  int64_t as_int(const char* key, const json& v) const {
    if (!v.is_number_integer()) fail(key, "must be an integer, got " + show(v));
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(key, "is out of range: " + show(v));
    return v.get<int64_t>();
  }
  int64_t positive_int(const char* key, const json& v) const {
    int64_t x = as_int(key, v);
    if (x <= 0) fail(key, "must be positive, got " + std::to_string(x));
    return x;
  }
  int64_t req_positive_int(const char* key) const { return positive_int(key, require(key)); }
  int64_t opt_positive_int(const char* key, int64_t def) const {
    const json* v = find(key);
    return v ? positive_int(key, *v) : def;
  }
  double positive_num(const char* key, const json& v) const {
    if (!v.is_number()) fail(key, "must be a number, got " + show(v));
    double x = v.get<double>();
    if (!(x > 0) || !std::isfinite(x)) fail(key, "must be a positive number, got " + show(v));
    return x;
  }
  double req_positive_num(const char* key) const { return positive_num(key, require(key)); }
  double opt_positive_num(const char* key, double def) const {
    const json* v = find(key);
    return v ? positive_num(key, *v) : def;
  }
  bool opt_bool(const char* key, bool def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_boolean()) fail(key, "must be true or false, got " + show(*v));
    return v->get<bool>();
  }
  std::string str(const char* key, const json& v) const {
    if (!v.is_string()) fail(key, "must be a string, got " + show(v));
    return v.get<std::string>();
  }
  std::string opt_str(const char* key, const std::string& def) const {
    const json* v = find(key);
    return v ? str(key, *v) : def;
  }
  // int, list of ints (non-empty) or null -> all ids (empty when null / absent).
  std::vector<int64_t> token_ids(const char* key, std::vector<int64_t> def) const {
    auto it = j_.find(key);
    if (it == j_.end()) return def;
    if (it->is_null()) return {};
    if (it->is_array()) {
      std::vector<int64_t> out;
      for (const auto& x : *it) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0)
          fail(key, "must be a token id, a list of token ids or null, got " + show(*it));
        out.push_back(as_int(key, x));
      }
      if (out.empty()) fail(key, "is an empty list");
      return out;
    }
    int64_t x = as_int(key, *it);
    if (x < 0) fail(key, "must be a non-negative token id, got " + std::to_string(x));
    return {x};
  }

 private:
  const json& j_;
  const std::string& where_;
  std::string prefix_;
};

RopeScaling parse_rope(const json& obj, const std::string& where, const std::string& key) {
  if (!obj.is_object())
    throw CheckpointError(where + ": key '" + key + "' must be an object or null, got " + show(obj));
  Reader r(obj, where, key + ".");
  std::string type;
  const char* type_key = r.has("rope_type") ? "rope_type" : "type";
  if (!r.has(type_key))
    throw CheckpointError(where + ": key '" + key + "' has no 'rope_type' (or 'type')");
  type = r.str(type_key, *r.find(type_key));
  RopeScaling rs;
  if (type == "default" || type == "none") {
    rs.type = "none";
  } else if (type == "linear") {
    rs.type = "linear";
    rs.factor = r.req_positive_num("factor");
  } else if (type == "llama3") {
    rs.type = "llama3";
    rs.factor = r.req_positive_num("factor");
    rs.low_freq_factor = r.req_positive_num("low_freq_factor");
    rs.high_freq_factor = r.req_positive_num("high_freq_factor");
    rs.original_max_position_embeddings = r.req_positive_int("original_max_position_embeddings");
    if (!(rs.high_freq_factor > rs.low_freq_factor))
      r.fail("high_freq_factor", "(" + std::to_string(rs.high_freq_factor) +
                                     ") must be greater than low_freq_factor (" +
                                     std::to_string(rs.low_freq_factor) + ")");
  } else {
    throw CheckpointError(where + ": key '" + key + "." + type_key + "': rope type '" + type +
                          "' is not supported (supported: default, linear, llama3)");
  }
  return rs;
}

}  // namespace

namespace {

// "architectures": ["LlamaForCausalLM"], or model_type alone; refuses what lawcat does not build.
void parse_architecture(Reader& r, LlamaConfig& c) {
  if (const json* a = r.find("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string())
      r.fail("architectures", "must be a non-empty list of strings, got " + show(*a));
    if (a->size() > 1)
      r.fail("architectures", "lists several architectures " + show(*a) + "; expected one");
    c.architecture = (*a)[0].get<std::string>();
  } else if (const json* mt = r.find("model_type")) {
    std::string t = r.str("model_type", *mt);
    if (t == "llama") c.architecture = "LlamaForCausalLM";
    else if (t == "mistral") c.architecture = "MistralForCausalLM";
    else if (t == "qwen2") c.architecture = "Qwen2ForCausalLM";
    else if (t == "qwen3") c.architecture = "Qwen3ForCausalLM";
    else r.fail("model_type", "'" + t + "' is not supported (supported: llama, mistral, qwen2, qwen3)");
  } else {
    r.require("architectures");
  }
  if (c.architecture != "LlamaForCausalLM" && !c.is_mistral() && !c.is_qwen())
    r.fail("architectures", "names unsupported architecture '" + c.architecture +
                                "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                                "Qwen3ForCausalLM)");
}

// Sizes, heads and head_dim, norm eps, positions, tied embeddings.
void parse_shape(Reader& r, LlamaConfig& c, const std::string& where) {
  c.vocab_size = r.req_positive_int("vocab_size");
  c.hidden_size = r.req_positive_int("hidden_size");
  c.intermediate_size = r.req_positive_int("intermediate_size");
  c.num_hidden_layers = r.req_positive_int("num_hidden_layers");
  c.num_attention_heads = r.req_positive_int("num_attention_heads");
  c.num_key_value_heads = r.opt_positive_int("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    std::ostringstream os;
    os << where << ": num_attention_heads (" << c.num_attention_heads
       << ") must be divisible by num_key_value_heads (" << c.num_key_value_heads << ")";
    throw CheckpointError(os.str());
  }
  if (r.has("head_dim")) {
    c.head_dim = r.positive_int("head_dim", *r.find("head_dim"));
  } else if (c.is_qwen3()) {
    c.head_dim = 128;  // Qwen3Config's default (not hidden_size / heads)
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      std::ostringstream os;
      os << where << ": hidden_size (" << c.hidden_size << ") must be divisible by "
         << "num_attention_heads (" << c.num_attention_heads << ") when head_dim is absent";
      throw CheckpointError(os.str());
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.rms_norm_eps = r.opt_positive_num("rms_norm_eps", 1e-6);
  c.max_position_embeddings =
      r.opt_positive_int("max_position_embeddings", c.is_mistral() ? 4096 * 32 : c.is_qwen() ? 32768 : 2048);
  c.tie_word_embeddings = r.opt_bool("tie_word_embeddings", false);

}

void parse_rope_settings(Reader& r, LlamaConfig& c, const std::string& where) {
  // RoPE: transformers v5 "rope_parameters" (with rope_theta inside), else
  // "rope_theta" + "rope_scaling".
  c.rope_theta = r.opt_positive_num("rope_theta", 10000.0);
  if (const json* rp = r.find("rope_parameters")) {
    c.rope_scaling = parse_rope(*rp, where, "rope_parameters");
    if (rp->is_object() && rp->contains("rope_theta") && !(*rp)["rope_theta"].is_null())
      c.rope_theta = Reader(*rp, where, "rope_parameters.")
                         .positive_num("rope_theta", (*rp)["rope_theta"]);
  } else if (const json* rs = r.find("rope_scaling")) {
    c.rope_scaling = parse_rope(*rs, where, "rope_scaling");
  }

}

// Sliding windows: Qwen's per-layer layer_types / use_sliding_window + max_window_layers,
// Mistral's sliding_window on every layer (4096 when absent, null = none).
void parse_windows(Reader& r, LlamaConfig& c, const json& j) {
  if (c.is_qwen()) {
    // transformers 5 (Qwen2Config / Qwen3Config): sliding_window is kept only with
    // use_sliding_window; layer_types, when absent, puts the window on layers >= max_window_layers.
    c.use_sliding_window = r.opt_bool("use_sliding_window", false);
    if (const json* m = r.find("max_window_layers")) {
      c.max_window_layers = r.as_int("max_window_layers", *m);
      if (c.max_window_layers < 0)
        r.fail("max_window_layers", "must be non-negative, got " + std::to_string(c.max_window_layers));
    }
    if (c.use_sliding_window) {  // null: no window (all layers full); absent: the default 4096
      if (r.has("sliding_window")) c.sliding_window = r.positive_int("sliding_window", *r.find("sliding_window"));
      else if (!j.contains("sliding_window")) c.sliding_window = 4096;
    }
    if (const json* lt = r.find("layer_types")) {
      if (!lt->is_array() || static_cast<int64_t>(lt->size()) != c.num_hidden_layers)
        r.fail("layer_types", "must be a list of num_hidden_layers (" + std::to_string(c.num_hidden_layers) +
                                  ") strings, got " + show(*lt));
      for (const auto& t : *lt) {
        if (!t.is_string() || (t != "full_attention" && t != "sliding_attention"))
          r.fail("layer_types", "holds " + show(t) + " (supported: \"full_attention\", \"sliding_attention\")");
        c.layer_types.push_back(t.get<std::string>());
      }
    } else {
      for (int64_t i = 0; i < c.num_hidden_layers; ++i)
        c.layer_types.push_back(c.sliding_window && i >= c.max_window_layers ? "sliding_attention" : "full_attention");
    }
    for (size_t i = 0; i < c.layer_types.size(); ++i)
      if (c.layer_types[i] == "sliding_attention" && !c.sliding_window)
        r.fail("layer_types", "names layer " + std::to_string(i) +
                                  " \"sliding_attention\" but there is no window (use_sliding_window is false or "
                                  "sliding_window is null)");
  } else if (j.contains("sliding_window")) {
    if (r.has("sliding_window"))
      c.sliding_window = r.positive_int("sliding_window", *r.find("sliding_window"));
  } else if (c.is_mistral()) {
    c.sliding_window = 4096;
  }

}

// Special token ids, dtype, and the features lawcat's Llama does not implement (refused).
void parse_tokens_dtype_features(Reader& r, LlamaConfig& c) {
  auto bos = r.token_ids("bos_token_id", {1});
  if (bos.size() > 1) r.fail("bos_token_id", "must be one token id or null, got a list");
  c.bos_token_id = bos.empty() ? -1 : bos[0];
  c.eos_token_ids = r.token_ids("eos_token_id", {2});
  c.eos_token_id = c.eos_token_ids.empty() ? -1 : c.eos_token_ids[0];

  // transformers v5 writes "dtype"; older versions "torch_dtype".
  const char* dtype_key = r.has("torch_dtype") ? "torch_dtype" : "dtype";
  c.torch_dtype = r.opt_str(dtype_key, "float32");
  if (c.torch_dtype != "float32" && c.torch_dtype != "float16" && c.torch_dtype != "bfloat16" &&
      c.torch_dtype != "float64")
    r.fail(dtype_key, "'" + c.torch_dtype + "' is not supported (float32, float16, bfloat16, float64)");

  // Features lawcat's Llama does not implement: refuse rather than load wrongly.
  const std::string act = r.opt_str("hidden_act", "silu");
  if (act != "silu") r.fail("hidden_act", "'" + act + "' is not supported (only silu)");
  // Qwen2 always has q/k/v biases (its config has no attention_bias; a stray one is ignored,
  // as transformers does); Llama and Qwen3 put attention_bias on all four projections.
  if (!c.is_qwen2()) c.attention_bias = r.opt_bool("attention_bias", false);
  if (c.is_mistral() && c.attention_bias)
    r.fail("attention_bias", "is true: MistralForCausalLM has no attention biases");
  if (r.opt_bool("mlp_bias", false))
    r.fail("mlp_bias", "is true: MLP projections with biases are not supported");

}

}  // namespace

LlamaConfig parse_llama_config(const json& j, const std::string& where) {
  if (!j.is_object())
    throw CheckpointError(where + ": expected a JSON object, got " + std::string(j.type_name()));
  Reader r(j, where);
  LlamaConfig c;
  parse_architecture(r, c);
  parse_shape(r, c, where);
  parse_rope_settings(r, c, where);
  parse_windows(r, c, j);
  parse_tokens_dtype_features(r, c);
  if (const json* l = r.find("lawcat")) {
    if (!l->is_object()) r.fail("lawcat", "must be an object, got " + show(*l));
    c.lawcat = *l;
  }
  return c;
}

LlamaConfig load_llama_config(const std::filesystem::path& config_json) {
  const std::string where = config_json.string();
  std::string text;
  try {
    text = fs::read_text(config_json);
  } catch (const Error& e) {
    throw CheckpointError(e.what());
  }
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw CheckpointError(where + ": invalid JSON: " + e.what());
  }
  return parse_llama_config(j, where);
}

json to_json(const LlamaConfig& c) {
  json j = json::object();
  j["architectures"] = json::array({c.architecture});
  j["model_type"] = c.is_mistral() ? "mistral" : c.is_qwen2() ? "qwen2" : c.is_qwen3() ? "qwen3" : "llama";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  if (!c.is_qwen2()) j["attention_bias"] = c.attention_bias;
  j["mlp_bias"] = false;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  const auto& rs = c.rope_scaling;
  if (rs.type == "linear") {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rs.factor}};
  } else if (rs.type == "llama3") {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rs.factor},
                         {"low_freq_factor", rs.low_freq_factor},
                         {"high_freq_factor", rs.high_freq_factor},
                         {"original_max_position_embeddings", rs.original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["max_position_embeddings"] = c.max_position_embeddings;
  if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
  else if (c.is_mistral() || c.is_qwen()) j["sliding_window"] = nullptr;
  if (c.is_qwen()) {
    j["use_sliding_window"] = c.use_sliding_window;
    j["max_window_layers"] = c.max_window_layers;
    j["layer_types"] = c.layer_types;
  }
  j["bos_token_id"] = c.bos_token_id < 0 ? json(nullptr) : json(c.bos_token_id);
  if (c.eos_token_ids.empty()) j["eos_token_id"] = nullptr;
  else if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = c.torch_dtype;
  if (!c.lawcat.is_null()) j["lawcat"] = c.lawcat;
  return j;
}

void save_llama_config(const std::filesystem::path& config_json, const LlamaConfig& c) {
  fs::atomic_write_text(config_json, to_json(c).dump(2) + "\n");
}

int64_t LlamaConfig::attention_window(int64_t layer) const {
  if (!sliding_window || layer < 0 || layer >= num_hidden_layers) return 0;
  if (is_mistral()) return *sliding_window;  // MistralForCausalLM: every layer
  if (!is_qwen() || layer >= static_cast<int64_t>(layer_types.size())) return 0;
  return layer_types[layer] == "sliding_attention" ? *sliding_window : 0;
}

bool operator==(const RopeScaling& a, const RopeScaling& b) {
  return a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor &&
         a.original_max_position_embeddings == b.original_max_position_embeddings;
}

bool operator==(const LlamaConfig& a, const LlamaConfig& b) {
  return a.architecture == b.architecture && a.vocab_size == b.vocab_size &&
         a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
         a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads &&
         a.num_key_value_heads == b.num_key_value_heads && a.head_dim == b.head_dim &&
         a.rms_norm_eps == b.rms_norm_eps && a.rope_theta == b.rope_theta &&
         a.rope_scaling == b.rope_scaling && a.tie_word_embeddings == b.tie_word_embeddings &&
         a.max_position_embeddings == b.max_position_embeddings &&
         a.sliding_window == b.sliding_window && a.attention_bias == b.attention_bias &&
         a.use_sliding_window == b.use_sliding_window && a.max_window_layers == b.max_window_layers &&
         a.layer_types == b.layer_types && a.bos_token_id == b.bos_token_id &&
         a.eos_token_id == b.eos_token_id && a.eos_token_ids == b.eos_token_ids &&
         a.torch_dtype == b.torch_dtype && a.lawcat == b.lawcat;
}

}  // namespace lawcat::io
