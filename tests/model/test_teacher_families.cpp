// Teachers beyond Llama (issue 16 item 1): Qwen2 (q/k/v biases, untied and tied, theta 1e6,
// sliding-window layers), Qwen3 (per-head q/k RMSNorm, head_dim != hidden / heads) and a
// SmolLM2-style Llama (byte-level BPE tokenizer.json, no BOS). The checkpoints, the tokenizers
// and the reference logits / NLL / token ids all come from Hugging Face transformers and
// tokenizers (tests/reference/hf_family.py), so config.json is what transformers 5 writes.
// Checked: logits and NLL against transformers (float32, eager), prefill + one-token decoding
// against the full forward (the window crosses), tokenization and `ppl`'s document NLL against
// transformers, and the distill -> export -> reload loop (tiny step counts, CPU).
// Mistral's sliding_window (every layer, window 8 over 40 tokens) against transformers, the
// bounded KV cache of windowed layers (decoding equals the forward and the unbounded cache, the
// cache holds at most the window), and Qwen's NFC normalizer on decomposed text.
// Skips with a message when no Python with transformers is found.
#include <cstdlib>
#include <fstream>

#include "config/yaml.h"
#include "eval/generate.h"
#include "eval/perplexity.h"
#include "model/model_helpers.h"
#include "eval/eval_runner.h"
#include "model/export.h"
#include "model/model_tokenizer.h"
#include "model/swap.h"
#include "text/unicode.h"
#include "train/recipe.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::test;
using nlohmann::json;

namespace {

struct Family {
  std::string name;
  std::string architecture;
  std::filesystem::path dir;
  int64_t window = 0;  // sliding window of the last layer (0 = none)
};

const std::vector<std::string> kTexts = {
    "Once upon a time, there was a little girl named Lily.",
    "The numbers 12345 and 3.14159, next to 2024-01-31!",
    "Café, naïve; Straße. Москва. 東京は日本の首都です。 😀",
    "I'm sure you'll see they've said it's what we'd do.\nTabs\tand  spaces   here.",
};

json base_config(bool tied) {
  return json{{"hidden_size", 64},        {"intermediate_size", 112}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"tie_word_embeddings", tied},
              {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-6}};
}

// The families, written by transformers once per process; empty with `why` set when skipped.
// Builds a fixture once per process with a Python that can run transformers: later calls get
// what `make(py, out)` built, fail as it failed (it returns the failure text), or skip when there
// is no such Python. Each call site (its own lambda type) has its own fixture.
template <class T, class Make>
const T& python_fixture(std::string& why, Make make) {
  static T out;
  static std::string skip, failure;
  static bool done = false;
  if (!done) {
    done = true;
    std::string tried;
    const std::string py = find_transformers_python(tried);
    if (py.empty()) skip = "no Python with torch + safetensors + transformers (tried " + tried + ")";
    else failure = make(py, out);
    if (!failure.empty()) out = T{};
  }
  if (!failure.empty()) FAIL(failure);
  why = skip;
  return out;
}

// tests/reference/hf_family.py over (folder, spec) pairs: each folder gets its spec.json, then
// transformers' checkpoint and reference outputs. Returns "" or the failure with the script's log.
std::string run_hf_family(const std::string& py, const std::filesystem::path& root,
                          const std::vector<std::pair<std::filesystem::path, json>>& specs) {
  std::string cmd = shell_quote(py) + " " + shell_quote(std::string(LAWCAT_SOURCE_DIR) + "/tests/reference/hf_family.py");
  for (const auto& [dir, spec] : specs) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "spec.json") << spec.dump();
    cmd += " " + shell_quote(dir.string());
  }
  if (lawcat::test::run_logged(cmd, (root / "log.txt").string()) == 0) return "";
  return "hf_family.py failed:\n" + fs::read_text(root / "log.txt");
}

// A failure of hf_family.py fails every test case that asks.
const std::vector<Family>& families(std::string& why) {
  return python_fixture<std::vector<Family>>(why, [](const std::string& py, std::vector<Family>& out) {
    const auto root = scratch_dir("teacher_families");
    struct Spec {
      std::string name, architecture, model_type, tokenizer;
      json config;
      int64_t window;
    };
    json q2w = base_config(false);  // untied, layer 1 sliding (window 8), theta 1e6
    q2w.update({{"rope_theta", 1e6}, {"use_sliding_window", true}, {"sliding_window", 8}, {"max_window_layers", 1}});
    json q2t = base_config(true);
    q2t.update({{"rope_theta", 1e6}});
    json q3 = base_config(true);  // head_dim 24 != 64 / 4, q/k norms
    q3.update({{"head_dim", 24}, {"rope_theta", 1e6}, {"attention_bias", false}});
    json q3b = base_config(false);  // attention_bias: biases on q, k, v and o; sliding window on layer 1
    q3b.update({{"head_dim", 8}, {"attention_bias", true}, {"use_sliding_window", true}, {"sliding_window", 5},
                {"max_window_layers", 1}});
    json smol = base_config(true);
    smol.update({{"rope_theta", 1e5}});
    const std::vector<Spec> specs = {
        {"qwen2_untied_window", "Qwen2ForCausalLM", "qwen2", "qwen2", q2w, 8},
        {"qwen2_tied", "Qwen2ForCausalLM", "qwen2", "qwen2", q2t, 0},
        {"qwen3", "Qwen3ForCausalLM", "qwen3", "qwen2", q3, 0},
        {"qwen3_bias_window", "Qwen3ForCausalLM", "qwen3", "qwen2", q3b, 5},
        {"smollm2", "LlamaForCausalLM", "llama", "smollm2", smol, 0},
    };
    std::vector<std::pair<std::filesystem::path, json>> runs;
    for (size_t i = 0; i < specs.size(); ++i) {
      const auto& s = specs[i];
      // 330 = the tokenizer's vocabulary (hf_family.py trains it to that size).
      runs.emplace_back(root / s.name, json{{"model_type", s.model_type},
                                            {"config", s.config},
                                            {"tokenizer", s.tokenizer},
                                            {"ids", {random_ids(40, 330, 60 + i), random_ids(40, 330, 70 + i)}},
                                            {"texts", kTexts},
                                            {"seed", 5 + i}});
      out.push_back({s.name, s.architecture, root / s.name, s.window});
    }
    return run_hf_family(py, root, runs);
  });
}

json read_json(const std::filesystem::path& p) { return json::parse(fs::read_text(p)); }

// Text with decomposed accents (NFD) and the NFC form the normalizer makes of it.
const std::vector<std::pair<std::string, std::string>> kNfdTexts = {
    {"Cafe\u0301, nai\u0308ve, jalapen\u0303o; Stra\u00dfe.", "Caf\u00e9, na\u00efve, jalape\u00f1o; Stra\u00dfe."},
    {"A\u030angstro\u0308m e\u0301te\u0301 \u1100\u1161 \u1112\u1161\u11ab", "\u00c5ngstr\u00f6m \u00e9t\u00e9 \uac00 \ud55c"},
};

// Two more checkpoints that transformers writes (one hf_family.py run): "mistral_window", a
// MistralForCausalLM with sliding_window 8 (every layer), vocabulary 97; "qwen2_nfc", a Qwen2
// with the NFC + Split + ByteLevel tokenizer and kNfdTexts' decomposed strings as its texts.
const std::map<std::string, std::filesystem::path>& extra_checkpoints(std::string& why) {
  using Dirs = std::map<std::string, std::filesystem::path>;
  return python_fixture<Dirs>(why, [](const std::string& py, Dirs& out) {
    const auto root = scratch_dir("teacher_families_extra");
    json mistral = base_config(false);
    mistral.update({{"sliding_window", 8}, {"vocab_size", 97}, {"rope_theta", 1e4}});
    std::vector<std::string> nfd;
    for (const auto& t : kNfdTexts) nfd.push_back(t.first);
    const std::vector<std::pair<std::string, json>> specs = {
        {"mistral_window",
         json{{"model_type", "mistral"}, {"config", mistral}, {"tokenizer", nullptr},
              {"ids", {random_ids(40, 97, 81), random_ids(40, 97, 82)}}, {"seed", 11}}},
        {"qwen2_nfc",
         json{{"model_type", "qwen2"}, {"config", base_config(true)}, {"tokenizer", "qwen2"},
              {"ids", {random_ids(8, 330, 83)}}, {"texts", nfd}, {"seed", 12}}},
    };
    std::vector<std::pair<std::filesystem::path, json>> runs;
    for (const auto& [name, spec] : specs) {
      runs.emplace_back(root / name, spec);
      out[name] = root / name;
    }
    return run_hf_family(py, root, runs);
  });
}

at::Tensor ids_tensor(const json& rows) {
  std::vector<at::Tensor> r;
  for (const auto& row : rows) r.push_back(at::tensor(row.get<std::vector<int64_t>>(), at::kLong));
  return at::stack(r);
}

// Mean next-token NLL per row of logits [B, T, V] for ids [B, T] -> [B].
at::Tensor row_nll(const at::Tensor& logits, const at::Tensor& ids) {
  const int64_t T = ids.size(1);
  at::Tensor lp = logits.narrow(1, 0, T - 1).log_softmax(-1).gather(-1, ids.narrow(1, 1, T - 1).unsqueeze(-1));
  return -lp.squeeze(-1).mean(-1);
}

}  // namespace

// Qwen2 / Qwen3 / SmolLM2 read byte-level tokenizer.json files, which need PCRE2 (the GPU machine
// may build without it).
#ifdef LAWCAT_HAVE_PCRE2
#define LAWCAT_PCRE2_OR_SKIP()
#else
#define LAWCAT_PCRE2_OR_SKIP() LAWCAT_SKIP("built without PCRE2 (libpcre2-dev): tokenizer.json families are off")
#endif

TEST_CASE("Qwen2 / Qwen3 / SmolLM2 teachers: logits and NLL equal transformers'; decoding equals the forward",
          "[model][python]") {
  LAWCAT_PCRE2_OR_SKIP();
  std::string why;
  const auto& fam = families(why);
  if (fam.empty()) LAWCAT_SKIP(why);
  for (const auto& f : fam) {
    CAPTURE(f.name);
    const auto cfg = io::load_llama_config(f.dir / "config.json");
    CHECK(cfg.architecture == f.architecture);
    CHECK(cfg.attention_window(1) == f.window);
    auto m = model::load_llama(f.dir, at::kCPU, at::kFloat);
    io::SafetensorsFile hf(f.dir / "hf_out.safetensors");
    const at::Tensor ids = ids_tensor(read_json(f.dir / "spec.json")["ids"]);
    at::NoGradGuard g;
    const at::Tensor ours = m->forward(ids);
    const at::Tensor ref = hf.load("logits");
    REQUIRE(ours.sizes() == ref.sizes());
    CAPTURE(rel_rms(ours, ref), max_abs(ours, ref));
    CHECK(rel_rms(ours, ref) < 1e-5);
    CHECK(max_abs(ours, ref) < 1e-4);
    CHECK(max_abs(row_nll(ours, ids), hf.load("nll")) < 1e-5);

    // Prefill 7 tokens, then one token at a time (the KV cache; the window crosses).
    model::DecodeState st = m->new_decode_state(ids.size(0));
    std::vector<at::Tensor> parts = {m->forward(ids.narrow(1, 0, 7), st)};
    for (int64_t t = 7; t < ids.size(1); ++t) parts.push_back(m->forward(ids.narrow(1, t, 1), st));
    const at::Tensor stepped = at::cat(parts, 1);
    CAPTURE(max_abs(stepped, ours));
    CHECK(max_abs(stepped, ours) < 1e-4);
  }
}

TEST_CASE("Qwen2 / Qwen3 / SmolLM2 teachers saved by lawcat load in transformers as the same model",
          "[model][python]") {
  LAWCAT_PCRE2_OR_SKIP();
  std::string why;
  const auto& fam = families(why);
  if (fam.empty()) LAWCAT_SKIP(why);
  std::string tried;
  const std::string py = find_transformers_python(tried);
  const auto root = scratch_dir("teacher_families_resave");
  std::string cmd = shell_quote(py) + " " + shell_quote(std::string(LAWCAT_SOURCE_DIR) + "/tests/reference/hf_family.py") +
                    " --same";
  for (const auto& f : fam) {
    auto m = model::load_llama(f.dir, at::kCPU, at::kFloat);
    model::save_llama(*m, root / f.name);
    const auto j = read_json(root / f.name / "config.json");
    CHECK(j["architectures"][0] == f.architecture);
    cmd += " " + shell_quote(f.dir.string()) + " " + shell_quote((root / f.name).string());
  }
  const int rc = lawcat::test::run_logged(cmd, (root / "log.txt").string());
  const std::string log = fs::read_text(root / "log.txt");
  INFO(log);
  CHECK(rc == 0);
}

TEST_CASE("Qwen2 / SmolLM2 byte-level tokenizers: ids and ppl's document NLL equal transformers'",
          "[model][python][text]") {
  LAWCAT_PCRE2_OR_SKIP();
  std::string why;
  const auto& fam = families(why);
  if (fam.empty()) LAWCAT_SKIP(why);
  for (const auto& f : fam) {
    CAPTURE(f.name);
    auto tok = model::load_model_tokenizer(f.dir);
    CHECK(tok->kind() == "bpe");
    CHECK(!tok->add_bos_by_default());  // neither family adds a BOS
    if (f.name.rfind("qwen", 0) == 0) CHECK(tok->bos_id() == -1);  // bos_token null
    else CHECK(tok->bos_id() == tok->piece_to_id("<|endoftext|>"));
    const json hf_ids = read_json(f.dir / "hf_tokens.json")["ids"];
    REQUIRE(hf_ids.size() == kTexts.size());
    for (size_t i = 0; i < kTexts.size(); ++i) {
      CAPTURE(kTexts[i]);
      CHECK(tok->encode(kTexts[i], tok->add_bos_by_default()) == hf_ids[i].get<std::vector<int64_t>>());
      CHECK(tok->decode(hf_ids[i].get<std::vector<int64_t>>()) == kTexts[i]);
    }
    // `lawcat generate`: the prompt as the tokenizer's pipeline encodes it (no BOS), greedy
    // continuation equal to the model's argmax.
    {
      auto m = model::load_llama(f.dir, at::kCPU, at::kFloat);
      eval::GenerateOptions go;
      go.max_new_tokens = 4;
      go.stop_ids = {-2};  // none (an id no model emits)
      const auto r = eval::generate_text(*m, *tok, kTexts[0], go, {});
      CHECK(r.prompt_ids == hf_ids[0].get<std::vector<int64_t>>());
      REQUIRE(r.new_ids.size() == 4);
      at::NoGradGuard g;
      const at::Tensor logits = m->forward(at::tensor(r.prompt_ids, at::kLong).unsqueeze(0));
      CHECK(logits[0][-1].argmax().item<int64_t>() == r.new_ids[0]);
    }
    // `lawcat ppl` over the texts as blank-line separated documents.
    std::string text;
    for (const auto& t : kTexts) text += t + "\n\n";
    fs::atomic_write_text(f.dir / "docs.txt", text);
    auto m = model::load_llama(f.dir, at::kCPU, at::kFloat);
    eval::PerplexityOptions po;
    po.progress = false;
    const auto r = eval::perplexity_of_file(*m, *tok, f.dir / "docs.txt", po);
    io::SafetensorsFile hf(f.dir / "hf_out.safetensors");
    const at::Tensor doc = hf.load("doc_nll", at::kCPU, at::kDouble);
    CHECK(r.tokens == static_cast<int64_t>(doc[1].item<double>()));
    CAPTURE(r.nll_sum, doc[0].item<double>());
    CHECK(std::abs(r.nll_sum - doc[0].item<double>()) < 1e-3);
  }
}

TEST_CASE("Qwen2 / Qwen3 / SmolLM2 teachers: distill -> export -> reload", "[model][python][train]") {
  LAWCAT_PCRE2_OR_SKIP();
  std::string why;
  const auto& fam = families(why);
  if (fam.empty()) LAWCAT_SKIP(why);
  std::string tried;
  const std::string py = find_transformers_python(tried);
  const auto root = scratch_dir("teacher_families_distill");
  std::vector<std::pair<Family, std::filesystem::path>> exports;
  std::string corpus;
  for (int i = 0; i < 30; ++i)
    for (const auto& t : kTexts) corpus += t + " " + std::to_string(i) + "\n\n";
  fs::atomic_write_text(root / "corpus.txt", corpus);
  for (const auto& f : fam) {
    CAPTURE(f.name);
    const auto out = root / f.name;
    const std::string yaml = "output_dir: " + out.string() + "\nthreads: 1\nmodel: {path: " + f.dir.string() +
                             "}\ndata: {train: [" + (root / "corpus.txt").string() +
                             "], seq_len: 24, val_fraction: 0.2}\nattention: {gate_rank: 4, feature_dim: 4}\n"
                             "distill: {steps: 2, eval_every: 1, val_batches: 1, grad_accum: 1}\n"
                             "lora: {steps: 2, eval_every: 1, val_batches: 1, grad_accum: 1}\n";
    train::RecipeOptions ro;
    ro.progress = false;
    const auto r = train::run_recipe(config::parse_run_config(yaml, "run.yaml"), ro);
    REQUIRE(r.stages.size() == 2);
    CHECK(std::isfinite(r.teacher_val_ce));
    for (const auto& s : r.stages) CHECK(std::isfinite(s.best_val));

    // The export: the teacher's architecture, its biases / q-k norms untouched by LoRA (it adapts weights).
    const auto cfg = io::load_llama_config(r.export_dir / "config.json");
    CHECK(cfg.architecture == f.architecture);
    CHECK(cfg.attention_window(1) == f.window);
    CHECK(read_json(r.export_dir / "config.json")["model_type"] == "lawcat");
    io::WeightSet teacher(f.dir), exported(r.export_dir);
    for (const char* n : {"model.layers.1.self_attn.q_proj.bias", "model.layers.1.self_attn.v_proj.bias",
                          "model.layers.1.self_attn.o_proj.bias", "model.layers.1.self_attn.q_norm.weight",
                          "model.layers.1.self_attn.k_norm.weight"}) {
      CAPTURE(n);
      CHECK(teacher.contains(n) == exported.contains(n));
      if (teacher.contains(n)) CHECK(at::equal(teacher.load(n, at::kCPU, at::kFloat), exported.load(n, at::kCPU, at::kFloat)));
    }
    CHECK(exported.contains("model.layers.0.self_attn.conv_q"));
    CHECK(exported.contains("lm_head.weight") == !cfg.tie_word_embeddings);
    CHECK(std::filesystem::exists(r.export_dir / "tokenizer.json"));

    // Reloaded: LAWCAT on every layer, finite logits; in teacher mode it is the teacher but for
    // LoRA's merged weights, so the same loader reads both.
    auto student = model::load_model(r.export_dir);
    CHECK(model::lawcat_layers(*student).size() == 2);
    auto tok = model::load_model_tokenizer(r.export_dir);
    const auto ids = tok->encode(kTexts[0]);
    at::NoGradGuard g;
    const at::Tensor x = at::tensor(ids, at::kLong).unsqueeze(0);
    const at::Tensor logits = student->forward(x);
    CHECK(logits.isfinite().all().item<bool>());
    // Prefill + steps on the recurrent state equals the full forward.
    model::DecodeState st = student->new_decode_state(1);
    std::vector<at::Tensor> parts = {student->forward(x.narrow(1, 0, 5), st)};
    for (int64_t t = 5; t < x.size(1); ++t) parts.push_back(student->forward(x.narrow(1, t, 1), st));
    CAPTURE(max_abs(at::cat(parts, 1), logits));
    CHECK(max_abs(at::cat(parts, 1), logits) < 1e-3);
    // A second load is the same model.
    CHECK(at::equal(model::load_model(r.export_dir)->forward(x), logits));
    exports.emplace_back(f, r.export_dir);
  }

  // In Python (modeling_lawcat.py): every student gives lawcat's logits and greedy tokens (biases,
  // q/k norms); a Qwen student with softmax layers left is refused with a message rather than loaded
  // with Llama attention in those layers.
  {
    const auto& q3 = fam[2];
    REQUIRE(q3.name == "qwen3");
    auto m = model::load_llama(q3.dir, at::kCPU, at::kFloat);
    config::AttentionConfig a;
    a.gate_rank = 4;
    a.layers = {1};
    model::swap_to_lawcat(*m, a);
    model::export_model(*m, nullptr, root / "qwen3_layer1", {});
    exports.emplace_back(Family{"qwen3_layer1", q3.architecture, root / "qwen3_layer1", 0}, root / "qwen3_layer1");
  }
  const auto script = std::string(LAWCAT_SOURCE_DIR) + "/tests/reference/lawcat_student_logits.py";
  for (const auto& [f, dir] : exports) {
    CAPTURE(f.name);
    const std::vector<int64_t> row = random_ids(30, 330, 90);
    std::ofstream(dir / "ids.json") << json({row}).dump();
    std::ofstream(dir / "generate.json") << json{{"prompt", {row[0], row[1]}}, {"max_new_tokens", 3}}.dump();
    const auto log = dir / "py.log";
    const int rc = lawcat::test::run_logged(
        shell_quote(py) + " " + shell_quote(script) + " " + shell_quote((dir / "py.safetensors").string()) + " " + shell_quote(dir.string()),
        log.string());
    const std::string out = fs::read_text(log);
    if (f.name != "qwen3_layer1") {
      INFO(out);
      REQUIRE(rc == 0);
      auto m = model::load_model(dir);
      at::NoGradGuard g;
      const at::Tensor ours = m->forward(at::tensor(row, at::kLong).unsqueeze(0));
      io::SafetensorsFile py_out(dir / "py.safetensors");
      CAPTURE(max_abs(ours, py_out.load("logits.0")));
      CHECK(max_abs(ours, py_out.load("logits.0")) <= 1e-3);
      const auto greedy = eval::greedy_decode(*m, {row[0], row[1]}, 3, {});
      const at::Tensor gen = py_out.load("generated.0");
      CHECK(greedy.tokens == std::vector<int64_t>(gen.data_ptr<int64_t>(), gen.data_ptr<int64_t>() + gen.numel()));
    } else {
      CHECK(rc != 0);
      CHECK_THAT(out, LAWCAT_CONTAINS("NotImplementedError"));
      CHECK_THAT(out, LAWCAT_CONTAINS("has LAWCAT on layers [1] only"));
    }
  }
}

TEST_CASE("Qwen checkpoints that do not fit their config: errors name the file, the tensor and the key",
          "[model][python][errors]") {
  LAWCAT_PCRE2_OR_SKIP();
  std::string why;
  const auto& fam = families(why);
  if (fam.empty()) LAWCAT_SKIP(why);
  const auto dir = scratch_dir("teacher_families_bad");
  const auto& q2 = fam[1];  // qwen2_tied
  REQUIRE(q2.name == "qwen2_tied");
  std::filesystem::copy_file(q2.dir / "model.safetensors", dir / "model.safetensors");
  json cfg = read_json(q2.dir / "config.json");
  // Qwen2 weights read as Qwen3: the q/k norms are missing (the biases are left over: a warning).
  cfg["architectures"] = {"Qwen3ForCausalLM"};
  cfg["model_type"] = "qwen3";
  cfg["head_dim"] = 16;
  fs::atomic_write_text(dir / "config.json", cfg.dump());
  require_error<CheckpointError>([&] { model::load_llama(dir); },
                                 {(dir / "config.json").string(), "model.layers.0.self_attn.q_norm.weight",
                                  "Qwen3 q_norm, head_dim"});
  // Qwen3 with attention_bias: o_proj.bias is missing too.
  cfg["attention_bias"] = true;
  fs::atomic_write_text(dir / "config.json", cfg.dump());
  require_error<CheckpointError>([&] { model::load_llama(dir); },
                                 {"model.layers.0.self_attn.o_proj.bias", "attention_bias, hidden_size"});
  // A Qwen2 config over weights without biases.
  cfg = read_json(q2.dir / "config.json");
  fs::atomic_write_text(dir / "config.json", cfg.dump());
  io::WeightSet ws(q2.dir);
  std::vector<std::pair<std::string, at::Tensor>> no_bias;
  for (const auto& n : ws.names())
    if (n.find(".bias") == std::string::npos) no_bias.emplace_back(n, ws.load(n));
  std::filesystem::remove(dir / "model.safetensors");
  io::save_weight_set(dir, no_bias, 1);
  require_error<CheckpointError>([&] { model::load_llama(dir); },
                                 {(dir / "config.json").string(), "missing tensor model.layers.1.self_attn.k_proj.bias",
                                  "Qwen2 (always)"});
}

TEST_CASE("Mistral sliding_window: every layer windowed, logits equal transformers' past the window",
          "[model][python]") {
  std::string why;
  const auto& ck = extra_checkpoints(why);
  if (ck.empty()) LAWCAT_SKIP(why);
  const auto dir = ck.at("mistral_window");
  const auto cfg = io::load_llama_config(dir / "config.json");
  REQUIRE(cfg.architecture == "MistralForCausalLM");
  CHECK(cfg.sliding_window == std::optional<int64_t>(8));
  CHECK(cfg.attention_window(0) == 8);
  CHECK(cfg.attention_window(1) == 8);
  auto m = model::load_llama(dir, at::kCPU, at::kFloat);
  io::SafetensorsFile hf(dir / "hf_out.safetensors");
  const at::Tensor ids = ids_tensor(read_json(dir / "spec.json")["ids"]);  // [2, 40]: 5x the window
  at::NoGradGuard g;
  const at::Tensor ours = m->forward(ids), ref = hf.load("logits");
  REQUIRE(ours.sizes() == ref.sizes());
  CAPTURE(rel_rms(ours, ref), max_abs(ours, ref));
  CHECK(rel_rms(ours, ref) < 1e-5);
  CHECK(max_abs(ours, ref) < 1e-4);
  CHECK(max_abs(row_nll(ours, ids), hf.load("nll")) < 1e-5);

  // The window matters here: the same weights with sliding_window null (full causal attention)
  // agree with transformers on the first 8 positions only.
  const auto full_dir = scratch_dir("teacher_families_mistral_full");
  json j = read_json(dir / "config.json");
  j["sliding_window"] = nullptr;
  fs::atomic_write_text(full_dir / "config.json", j.dump());
  std::filesystem::copy_file(dir / "model.safetensors", full_dir / "model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  CHECK(io::load_llama_config(full_dir / "config.json").attention_window(0) == 0);
  const at::Tensor full = model::load_llama(full_dir, at::kCPU, at::kFloat)->forward(ids);
  CHECK(max_abs(full.narrow(1, 0, 8), ref.narrow(1, 0, 8)) < 1e-4);
  CAPTURE(max_abs(full, ref));
  CHECK(max_abs(full, ref) > 1e-2);
}

TEST_CASE("a Mistral student with softmax layers left and a sliding_window is refused by modeling_lawcat.py",
          "[model][python]") {
  std::string why;
  const auto& ck = extra_checkpoints(why);
  if (ck.empty()) LAWCAT_SKIP(why);
  std::string tried;
  const std::string py = find_transformers_python(tried);
  if (py.empty()) LAWCAT_SKIP("no python with transformers (" << tried << ")");
  // Its softmax layer would attend past the window in Python (Llama attention) but not in lawcat.
  auto m = model::load_llama(ck.at("mistral_window"), at::kCPU, at::kFloat);
  config::AttentionConfig a;
  a.gate_rank = 4;
  a.layers = {1};
  model::swap_to_lawcat(*m, a);
  const auto dir = scratch_dir("teacher_families_mistral_layer1");
  model::export_model(*m, nullptr, dir, {});
  const std::vector<int64_t> row = random_ids(12, 97, 91);
  std::ofstream(dir / "ids.json") << json({row}).dump();
  std::ofstream(dir / "generate.json") << json{{"prompt", {row[0], row[1]}}, {"max_new_tokens", 2}}.dump();
  const auto log = dir / "py.log";
  const std::string script = std::string(LAWCAT_SOURCE_DIR) + "/tests/reference/lawcat_student_logits.py";
  const int rc = lawcat::test::run_logged(
        shell_quote(py) + " " + shell_quote(script) + " " + shell_quote((dir / "py.safetensors").string()) + " " + shell_quote(dir.string()),
        log.string());
  const std::string out = fs::read_text(log);
  CHECK(rc != 0);
  CHECK_THAT(out, LAWCAT_CONTAINS("NotImplementedError"));
  CHECK_THAT(out, LAWCAT_CONTAINS("with sliding_window 8"));
}

TEST_CASE("windowed layers keep a bounded KV cache: decoding equals the forward and the unbounded cache",
          "[model][python]") {
  std::string why;
  const auto& ck = extra_checkpoints(why);
  if (ck.empty()) LAWCAT_SKIP(why);
  auto m = model::load_llama(ck.at("mistral_window"), at::kCPU, at::kFloat);  // window 8, every layer
  const at::Tensor ids = ids_tensor(read_json(ck.at("mistral_window") / "spec.json")["ids"]);  // [2, 40]
  const int64_t W = 8, T = ids.size(1);
  at::NoGradGuard g;
  const at::Tensor full = m->forward(ids);

  // The same decoding through the bounded cache (the model's own state) and through unbounded
  // caches: prefill 7 (< W), a chunk of 13 (> W) on top, then one token at a time.
  auto run = [&](model::DecodeState& st, bool check_bounded) {
    std::vector<at::Tensor> parts = {m->forward(ids.narrow(1, 0, 7), st), m->forward(ids.narrow(1, 7, 13), st)};
    for (int64_t t = 20; t < T; ++t) {
      parts.push_back(m->forward(ids.narrow(1, t, 1), st));
      if (!check_bounded) continue;
      for (const auto& l : st.layers) {
        auto* cache = dynamic_cast<model::KVCache*>(l.get());
        REQUIRE(cache);
        CHECK(cache->window() == W);
        CHECK(cache->length() == W);  // W - 1 kept + the new token
        CHECK(cache->seen() == t + 1);
        CHECK(cache->capacity() <= 64);  // max(64, 2W): bounded, whatever the length
      }
    }
    return at::cat(parts, 1);
  };
  model::DecodeState bounded = m->new_decode_state(2);
  const at::Tensor stepped = run(bounded, true);
  CAPTURE(max_abs(stepped, full));
  CHECK(max_abs(stepped, full) < 1e-4);
  model::DecodeState unbounded;
  unbounded.batch = 2;
  for (int64_t i = 0; i < m->num_layers(); ++i) unbounded.layers.push_back(std::make_unique<model::KVCache>());
  const at::Tensor stepped_full_cache = run(unbounded, false);
  CAPTURE(max_abs(stepped, stepped_full_cache));
  CHECK(max_abs(stepped, stepped_full_cache) < 1e-5);
  auto* held = dynamic_cast<model::KVCache*>(unbounded.layers[0].get());
  REQUIRE(held);
  CHECK(held->length() == T);  // the unbounded cache holds every position
  // 200 more tokens (the buffer is compacted several times): the bounded cache's memory does not
  // move and the logits still equal the full forward's.
  const int64_t bytes = bounded.memory_bytes();
  at::manual_seed(3);
  const at::Tensor more = at::randint(97, {2, 200}, at::kLong);
  std::vector<at::Tensor> later;
  for (int64_t t = 0; t < more.size(1); ++t) later.push_back(m->forward(more.narrow(1, t, 1), bounded));
  CHECK(bounded.memory_bytes() == bytes);
  CHECK(dynamic_cast<model::KVCache*>(bounded.layers[0].get())->length() == W);
  const at::Tensor full_later = m->forward(at::cat({ids, more}, 1)).narrow(1, T, more.size(1));
  CAPTURE(max_abs(at::cat(later, 1), full_later));
  CHECK(max_abs(at::cat(later, 1), full_later) < 1e-4);

  // Greedy decoding 30 tokens past an 8-token prompt: each token is the full forward's argmax.
  const std::vector<int64_t> prompt(ids[0].data_ptr<int64_t>(), ids[0].data_ptr<int64_t>() + 8);
  const auto greedy = eval::greedy_decode(*m, prompt, 30, {});
  REQUIRE(greedy.tokens.size() == 30);
  std::vector<int64_t> seq = prompt;
  seq.insert(seq.end(), greedy.tokens.begin(), greedy.tokens.end());
  const at::Tensor argmax = m->forward(at::tensor(seq, at::kLong).unsqueeze(0))[0].argmax(-1);
  for (size_t k = 0; k < greedy.tokens.size(); ++k) {
    CAPTURE(k);
    CHECK(argmax[prompt.size() - 1 + k].item<int64_t>() == greedy.tokens[k]);
  }
  // Ragged prompts in one left-padded batch: each row's tokens are those it gets alone.
  const std::vector<std::vector<int64_t>> prompts = {prompt, std::vector<int64_t>(prompt.begin(), prompt.begin() + 3)};
  const auto batch = eval::greedy_decode_batch(*m, prompts, 20, {});
  REQUIRE(batch.size() == 2);
  for (size_t r = 0; r < prompts.size(); ++r) {
    CAPTURE(r);
    CHECK(batch[r].tokens == eval::greedy_decode(*m, prompts[r], 20, {}).tokens);
  }
}

TEST_CASE("Qwen2 tokenizer.json NFC normalizer: decomposed accents give transformers' ids", "[model][python][text]") {
  LAWCAT_PCRE2_OR_SKIP();
  if (!text::unicode::nfc_available()) LAWCAT_SKIP("built without ICU: the NFC normalizer is skipped (warned)");
  std::string why;
  const auto& ck = extra_checkpoints(why);
  if (ck.empty()) LAWCAT_SKIP(why);
  const auto dir = ck.at("qwen2_nfc");
  CHECK(read_json(dir / "tokenizer.json")["normalizer"]["type"] == "NFC");
  auto tok = model::load_model_tokenizer(dir);
  const json hf_ids = read_json(dir / "hf_tokens.json")["ids"];
  REQUIRE(hf_ids.size() == kNfdTexts.size());
  for (size_t i = 0; i < kNfdTexts.size(); ++i) {
    const auto& [nfd, nfc] = kNfdTexts[i];
    CAPTURE(nfd);
    REQUIRE(nfd != nfc);
    CHECK(text::unicode::to_nfc(nfd) == nfc);
    CHECK(text::unicode::to_nfc(nfc) == nfc);
    const auto ids = tok->encode(nfd, false);
    CHECK(ids == hf_ids[i].get<std::vector<int64_t>>());
    CHECK(ids == tok->encode(nfc, false));  // the same text, composed
    CHECK(tok->decode(ids) == nfc);
  }
  CHECK(text::unicode::to_nfc("plain ASCII") == "plain ASCII");
  CHECK(text::unicode::to_nfc(std::string("bad \xff utf-8 e\xcc\x81")) == std::string("bad \xff utf-8 e\xcc\x81"));
}

TEST_CASE("KVCache with a window returns the last W - 1 held positions and the new ones, in order", "[model]") {
  // Appends of assorted sizes (1, below and above W, padded validity) against an unbounded cache:
  // the windowed views are the tail of the unbounded ones; capacity stays max(64, 2W, W - 1 + T).
  for (int64_t W : {1, 3, 8, 40}) {
    CAPTURE(W);
    model::KVCache windowed(W), all;
    at::manual_seed(W);
    int64_t seen = 0;
    for (int64_t T : {5, 1, 1, 17, 1, 2, 1, 1, 90, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1}) {
      CAPTURE(seen, T);
      const at::Tensor k = at::randn({2, 3, T, 4}), v = at::randn({2, 3, T, 4});
      const at::Tensor valid = at::rand({2, T}) > 0.3;
      auto [kw, vw] = windowed.append(k, v);
      auto [ka, va] = all.append(k, v);
      const at::Tensor valid_w = windowed.append_valid(valid, 2, T), valid_a = all.append_valid(valid, 2, T);
      seen += T;
      const int64_t held = std::min<int64_t>(seen - T, W - 1) + T;
      REQUIRE(kw.size(2) == held);
      CHECK(windowed.length() == held);
      CHECK(windowed.seen() == seen);
      CHECK(at::equal(kw, ka.narrow(2, seen - held, held)));
      CHECK(at::equal(vw, va.narrow(2, seen - held, held)));
      CHECK(at::equal(valid_w, valid_a.narrow(1, seen - held, held)));
      CHECK(windowed.capacity() <= std::max<int64_t>({64, 2 * W, W - 1 + T}));
    }
  }
}
