// io/hf_config: real config.json files (Llama 3.1, TinyLlama, Mistral), defaults,
// round trips, and errors that name the file and the key.
#include "io/hf_config.h"

#include "io/io_helpers.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::io;
using nlohmann::json;

namespace {
// meta-llama/Llama-3.1-8B config.json (as published).
const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256
})";
// TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json.
const char* kTinyLlama = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 5632, "max_position_embeddings": 2048, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 22, "num_key_value_heads": 4,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.35.0",
  "use_cache": true, "vocab_size": 32000
})";
// mistralai/Mistral-7B-v0.1 config.json.
const char* kMistral = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0",
  "use_cache": true, "vocab_size": 32000
})";
// Qwen/Qwen2.5-0.5B config.json (as published): no head_dim, tied, theta 1e6, window unused.
const char* kQwen25 = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936
})";
// Qwen/Qwen3-0.6B config.json (as published): head_dim 128 != 1024 / 16.
const char* kQwen3 = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936
})";
// The smallest config we accept.
json minimal() {
  return json{{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 40}, {"hidden_size", 16},
              {"intermediate_size", 24}, {"num_hidden_layers", 2}, {"num_attention_heads", 4}};
}
std::string parse_error(const json& j) {
  return test::checkpoint_error_of([&] { parse_llama_config(j, "config.json"); });
}
}  // namespace

TEST_CASE("Llama 3.1 config: GQA, llama3 rope scaling, eos list", "[io]") {
  auto c = parse_llama_config(json::parse(kLlama31), "config.json");
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.vocab_size == 128256);
  CHECK(c.hidden_size == 4096);
  CHECK(c.intermediate_size == 14336);
  CHECK(c.num_hidden_layers == 32);
  CHECK(c.num_attention_heads == 32);
  CHECK(c.num_key_value_heads == 8);
  CHECK(c.head_dim == 128);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.rope_scaling.type == "llama3");
  CHECK(c.rope_scaling.factor == 8.0);
  CHECK(c.rope_scaling.low_freq_factor == 1.0);
  CHECK(c.rope_scaling.high_freq_factor == 4.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(c.max_position_embeddings == 131072);
  CHECK(!c.tie_word_embeddings);
  CHECK(c.bos_token_id == 128000);
  CHECK(c.eos_token_id == 128001);
  CHECK(c.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009});
  CHECK(c.torch_dtype == "bfloat16");
  CHECK(!c.sliding_window);
  CHECK(c.lawcat.is_null());
}

TEST_CASE("TinyLlama and Mistral configs", "[io]") {
  auto t = parse_llama_config(json::parse(kTinyLlama), "config.json");
  CHECK(t.head_dim == 64);
  CHECK(t.num_key_value_heads == 4);
  CHECK(t.rope_scaling.type == "none");
  CHECK(t.eos_token_ids == std::vector<int64_t>{2});
  auto m = parse_llama_config(json::parse(kMistral), "config.json");
  CHECK(m.architecture == "MistralForCausalLM");
  CHECK(m.sliding_window == 4096);
  CHECK(m.max_position_embeddings == 32768);
}

TEST_CASE("defaults follow transformers", "[io]") {
  auto c = parse_llama_config(minimal(), "config.json");
  CHECK(c.num_key_value_heads == 4);  // = heads
  CHECK(c.head_dim == 4);             // = hidden / heads
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.rope_scaling.type == "none");
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_id == 2);
  CHECK(c.torch_dtype == "float32");
  auto j = minimal();
  j["head_dim"] = 8;  // explicit head_dim may differ from hidden / heads
  j["num_key_value_heads"] = nullptr;
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  j["architectures"] = {"MistralForCausalLM"};
  c = parse_llama_config(j, "config.json");
  CHECK(c.head_dim == 8);
  CHECK(c.num_key_value_heads == 4);
  CHECK(c.bos_token_id == -1);
  CHECK(c.eos_token_id == -1);
  CHECK(c.eos_token_ids.empty());
  CHECK(c.sliding_window == 4096);  // MistralConfig's default
  j.erase("architectures");
  j["model_type"] = "llama";
  CHECK(parse_llama_config(j, "config.json").architecture == "LlamaForCausalLM");
}

TEST_CASE("rope_scaling variants: linear, legacy 'type', v5 rope_parameters", "[io]") {
  auto j = minimal();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  auto c = parse_llama_config(j, "config.json");
  CHECK(c.rope_scaling.type == "linear");
  CHECK(c.rope_scaling.factor == 4.0);
  j["rope_scaling"] = {{"rope_type", "default"}};
  CHECK(parse_llama_config(j, "config.json").rope_scaling.type == "none");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 32.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  c = parse_llama_config(j, "config.json");
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.rope_scaling.type == "llama3");
  CHECK(c.rope_scaling.factor == 32.0);
}

TEST_CASE("missing required keys and wrong types name file and key", "[io]") {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "vocab_size"}) {
    auto j = minimal();
    j.erase(key);
    LAWCAT_CHECK_MSG(parse_error(j), std::string("config.json: missing required key '") + key + "'");
  }
  auto j = minimal();
  j.erase("architectures");
  LAWCAT_CHECK_MSG(parse_error(j), "config.json: missing required key 'architectures'");
  j = minimal();
  j["hidden_size"] = "4096";
  LAWCAT_CHECK_MSG(parse_error(j), "config.json: key 'hidden_size' must be an integer, got string");
  j = minimal();
  j["hidden_size"] = 16.5;
  LAWCAT_CHECK_MSG(parse_error(j), "key 'hidden_size' must be an integer");
  j = minimal();
  j["rms_norm_eps"] = "1e-5";
  LAWCAT_CHECK_MSG(parse_error(j), "config.json: key 'rms_norm_eps' must be a number");
  j = minimal();
  j["tie_word_embeddings"] = 1;
  LAWCAT_CHECK_MSG(parse_error(j), "key 'tie_word_embeddings' must be true or false");
  j = minimal();
  j["eos_token_id"] = "</s>";
  LAWCAT_CHECK_MSG(parse_error(j), "key 'eos_token_id' must be an integer");
  j = minimal();
  j["torch_dtype"] = "int4";
  LAWCAT_CHECK_MSG(parse_error(j), "key 'torch_dtype'", "'int4' is not supported");
  j = minimal();
  j["lawcat"] = "yes";
  LAWCAT_CHECK_MSG(parse_error(j), "key 'lawcat' must be an object");
  j = minimal();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  LAWCAT_CHECK_MSG(parse_error(j), "config.json: missing required key 'rope_scaling.low_freq_factor'");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([] { parse_llama_config(json::array(), "cfg.json"); }),
                   "cfg.json: expected a JSON object");
}

TEST_CASE("positivity and divisibility", "[io]") {
  auto j = minimal();
  j["num_key_value_heads"] = 3;
  LAWCAT_CHECK_MSG(parse_error(j), "config.json",
                   "num_attention_heads (4) must be divisible by num_key_value_heads (3)");
  j = minimal();
  j["hidden_size"] = 18;
  LAWCAT_CHECK_MSG(parse_error(j), "hidden_size (18) must be divisible by num_attention_heads (4)");
  j = minimal();
  j["num_hidden_layers"] = 0;
  LAWCAT_CHECK_MSG(parse_error(j), "key 'num_hidden_layers' must be positive, got 0");
  j = minimal();
  j["num_attention_heads"] = -4;
  LAWCAT_CHECK_MSG(parse_error(j), "key 'num_attention_heads' must be positive");
  j = minimal();
  j["rope_theta"] = 0;
  LAWCAT_CHECK_MSG(parse_error(j), "key 'rope_theta' must be a positive number");
  j = minimal();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  LAWCAT_CHECK_MSG(parse_error(j), "rope_scaling.high_freq_factor", "must be greater than");
}

TEST_CASE("unsupported architecture, rope type and features", "[io]") {
  auto j = minimal();
  j["architectures"] = {"GemmaForCausalLM"};
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "architectures", "'GemmaForCausalLM'",
                   "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM");
  j.erase("architectures");
  j["model_type"] = "gemma";
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "model_type", "'gemma' is not supported");
  j = minimal();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "rope_scaling.rope_type", "'yarn' is not supported");
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  LAWCAT_CHECK_MSG(parse_error(j), "rope_scaling.type", "'dynamic' is not supported");
  j["rope_scaling"] = {{"factor", 2.0}};
  LAWCAT_CHECK_MSG(parse_error(j), "'rope_scaling' has no 'rope_type'");
  j = minimal();
  j["hidden_act"] = "gelu";
  LAWCAT_CHECK_MSG(parse_error(j), "key 'hidden_act'", "'gelu' is not supported");
  j = minimal();
  j["architectures"] = {"MistralForCausalLM"};
  j["attention_bias"] = true;
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "key 'attention_bias'", "MistralForCausalLM has no attention biases");
  j = minimal();
  j["mlp_bias"] = true;
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "key 'mlp_bias'");
}

TEST_CASE("Qwen2.5 and Qwen3 configs: biases, q/k norms, head_dim, sliding-window layers", "[io]") {
  auto q2 = parse_llama_config(json::parse(kQwen25), "config.json");
  CHECK(q2.architecture == "Qwen2ForCausalLM");
  CHECK(q2.head_dim == 64);
  CHECK(q2.rope_theta == 1e6);
  CHECK(q2.tie_word_embeddings);
  CHECK(q2.qkv_bias());
  CHECK(!q2.o_bias());
  CHECK(!q2.qk_norm());
  CHECK(!q2.use_sliding_window);
  CHECK(!q2.sliding_window);  // transformers drops it without use_sliding_window
  CHECK(q2.max_window_layers == 24);
  REQUIRE(q2.layer_types.size() == 24);
  for (int64_t i = 0; i < 24; ++i) CHECK(q2.attention_window(i) == 0);
  auto q3 = parse_llama_config(json::parse(kQwen3), "config.json");
  CHECK(q3.architecture == "Qwen3ForCausalLM");
  CHECK(q3.head_dim == 128);
  CHECK(q3.qk_norm());
  CHECK(!q3.qkv_bias());
  CHECK(!q3.o_bias());
  CHECK(q3.eos_token_id == 151645);
  CHECK(q3.max_position_embeddings == 40960);

  // Qwen3 without head_dim: transformers' default 128, not hidden / heads.
  auto j = json::parse(kQwen3);
  j.erase("head_dim");
  CHECK(parse_llama_config(j, "c").head_dim == 128);
  j["attention_bias"] = true;
  auto biased = parse_llama_config(j, "c");
  CHECK(biased.qkv_bias());
  CHECK(biased.o_bias());
  // model_type alone.
  j = json::parse(kQwen25);
  j.erase("architectures");
  CHECK(parse_llama_config(j, "c").architecture == "Qwen2ForCausalLM");

  // The window: layers >= max_window_layers when use_sliding_window (no layer_types) ...
  j = json::parse(kQwen25);
  j["use_sliding_window"] = true;
  j["sliding_window"] = 128;
  j["max_window_layers"] = 20;
  auto sw = parse_llama_config(j, "c");
  CHECK(sw.sliding_window == std::optional<int64_t>(128));
  CHECK(sw.attention_window(19) == 0);
  CHECK(sw.attention_window(20) == 128);
  CHECK(sw.attention_window(23) == 128);
  // use_sliding_window with a null window: no window; with none given: transformers' 4096.
  auto null_window = j;
  null_window["sliding_window"] = nullptr;
  CHECK(parse_llama_config(null_window, "c").attention_window(23) == 0);
  null_window.erase("sliding_window");
  CHECK(parse_llama_config(null_window, "c").attention_window(23) == 4096);
  // ... or as layer_types lists them (transformers 5 writes layer_types).
  j["layer_types"] = json::array();
  for (int i = 0; i < 24; ++i) j["layer_types"].push_back(i % 2 ? "sliding_attention" : "full_attention");
  auto lt = parse_llama_config(j, "c");
  CHECK(lt.attention_window(0) == 0);
  CHECK(lt.attention_window(1) == 128);
  CHECK(parse_llama_config(to_json(lt), "round-trip") == lt);
  // Errors name the file and the key.
  j["layer_types"][3] = "chunked_attention";
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "key 'layer_types'", "chunked_attention");
  j["layer_types"] = {"full_attention"};
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "key 'layer_types'", "num_hidden_layers (24)");
  j["layer_types"] = json::array();
  for (int i = 0; i < 24; ++i) j["layer_types"].push_back("sliding_attention");
  j["use_sliding_window"] = false;
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "key 'layer_types'", "no window");
  j.erase("layer_types");
  j["max_window_layers"] = -1;
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "key 'max_window_layers'", "non-negative");
}

TEST_CASE("to_json / save round-trip, lawcat section kept", "[io]") {
  auto dir = test::scratch_dir("hf_config");
  for (const char* text : {kLlama31, kTinyLlama, kMistral, kQwen25, kQwen3}) {
    auto c = parse_llama_config(json::parse(text), "config.json");
    c.lawcat = {{"attention", "lawcat"}, {"conv_width", 4}, {"layers", {0, 1, 2}}};
    auto back = parse_llama_config(to_json(c), "round-trip");
    CHECK(back == c);
    save_llama_config(dir / "config.json", c);
    CHECK(load_llama_config(dir / "config.json") == c);
  }
  auto j = minimal();
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.5}};
  j["eos_token_id"] = nullptr;
  j["rms_norm_eps"] = 1.0 / 3.0;  // doubles survive exactly
  auto c = parse_llama_config(j, "x");
  CHECK(parse_llama_config(to_json(c), "x") == c);
  CHECK(to_json(c)["model_type"] == "llama");
}

TEST_CASE("load_llama_config: file errors name the file", "[io]") {
  auto dir = test::scratch_dir("hf_config_bad");
  fs::atomic_write_text(dir / "config.json", "{\"hidden_size\": 16,");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { load_llama_config(dir / "config.json"); }),
                   (dir / "config.json").string() + ": invalid JSON");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { load_llama_config(dir / "missing.json"); }),
                   "missing.json");
  fs::atomic_write_text(dir / "config.json", minimal().dump());
  CHECK(load_llama_config(dir / "config.json").hidden_size == 16);
}
