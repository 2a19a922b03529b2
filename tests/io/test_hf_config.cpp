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
  j["architectures"] = {"Qwen2ForCausalLM"};
  LAWCAT_CHECK_MSG(parse_error(j), "config.json", "architectures", "'Qwen2ForCausalLM'",
                   "supported: LlamaForCausalLM, MistralForCausalLM");
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
  j["attention_bias"] = true;
  LAWCAT_CHECK_MSG(parse_error(j), "key 'attention_bias'");
}

TEST_CASE("to_json / save round-trip, lawcat section kept", "[io]") {
  auto dir = test::scratch_dir("hf_config");
  for (const char* text : {kLlama31, kTinyLlama, kMistral}) {
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
