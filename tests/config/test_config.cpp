// config: YAML reading, overrides, error collection with file:line:col, round-trip.
#include <fstream>

#include "common/catch.h"
#include "config/yaml.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::config;

namespace {
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {},
                     Fallback fallback = Fallback::kAuto) {
  try {
    parse_run_config(yaml, "run.yaml", overrides, fallback);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
const char* kMinimal = "model:\n  path: teacher\ndata:\n  train: [a.txt]\n";
}  // namespace

TEST_CASE("defaults are the paper's", "[config]") {
  RunConfig c = parse_run_config(kMinimal, "run.yaml");
  CHECK(c.attention.conv_width == 4);
  CHECK(c.attention.gate_rank == 16);
  CHECK(c.attention.gate_tau == 16.0);
  CHECK(c.distill.lr == 1e-2);
  CHECK(c.distill.grad_accum == 8);
  CHECK(c.distill.loss_scale == 1000.0);
  CHECK(c.distill.scheduler.patience == 10);
  CHECK(c.lora.lr == 1e-4);
  CHECK(c.lora.lora_rank == 8);
  CHECK(c.lora.lora_alpha == 16.0);
  CHECK(c.data.seq_len == 1024);
}

TEST_CASE("values and overrides are read", "[config]") {
  RunConfig c = parse_run_config(
      "output_dir: out/x\nmodel: {path: t}\nattention:\n  gate_rank: 32\n  layers: [0, 2]\ndata:\n  train: [a.txt]\n",
      "run.yaml", {"attention.conv_width=2", "distill.lr=0.003", "attention.layers=[1]"});
  CHECK(c.output_dir == "out/x");
  CHECK(c.attention.gate_rank == 32);
  CHECK(c.attention.conv_width == 2);
  CHECK(c.distill.lr == 0.003);
  CHECK(c.attention.layers == std::vector<int64_t>{1});
}

TEST_CASE("unknown keys, wrong types and bad ranges are all reported with positions", "[config]") {
  std::string err = error_of(
      "data:\n  train: [a.txt]\nattention:\n  gate_rnk: 32\n  conv_width: -1\ndistill:\n  lr: fast\nmodel: {path: t}\n");
  CAPTURE(err);
  CHECK(err.find("3 problem(s)") != std::string::npos);
  CHECK(err.find("run.yaml:4:3: unknown key 'attention.gate_rnk'") != std::string::npos);
  CHECK(err.find("key 'attention.conv_width': must be >= 0") != std::string::npos);
  CHECK(err.find("run.yaml:7:7: key 'distill.lr': expected a number, got 'fast'") != std::string::npos);
}

TEST_CASE("bad overrides and cross-field problems are errors", "[config]") {
  CHECK(error_of(kMinimal, {"attention.nope=1"}).find("--set attention.nope=1: unknown key 'attention.nope'") != std::string::npos);
  CHECK(error_of(kMinimal, {"distill.lr=-1"}).find("--set distill.lr=-1: key 'distill.lr': must be > 0") != std::string::npos);
  CHECK(error_of(kMinimal, {"novalue"}).find("expected key.path=value") != std::string::npos);
  CHECK(error_of(kMinimal, {"attention.conv_width=64"}).find("above the supported maximum") != std::string::npos);
  CHECK(error_of(kMinimal, {"attention.gate_init_memory_min=64"}).find("need 1 < min <= max") != std::string::npos);
  CHECK(error_of("attention:\n  gate_rank: 0\n").find("attention.gate_rank': must be > 0") != std::string::npos);
  CHECK(error_of("{}").find("data.train: no training data") != std::string::npos);
  CHECK(error_of("a: [").find("YAML syntax error") != std::string::npos);
}

TEST_CASE("a mapping or a list used as a key is a ConfigError with its position (found by fuzz_yaml_config)",
          "[config]") {
  // yaml-cpp's bad-conversion exception used to escape, naming no file.
  CHECK_THAT(error_of("attention: {gate_rank: 4, {min_lr: 0.1}}\n"),
             LAWCAT_CONTAINS("run.yaml:1:27: in section 'attention': a key must be a plain name, got a mapping"));
  CHECK_THAT(error_of("? [a, b]\n: 1\n"),
             LAWCAT_CONTAINS("run.yaml:1:3: in section '(top level)': a key must be a plain name, got a list"));
}

TEST_CASE("a key given twice is a ConfigError naming both lines (issue 17 case 10a)", "[config]") {
  CHECK_THAT(error_of("distill:\n  lr: 0.1\n  steps: 3\n  lr: 0.2\n"),
             LAWCAT_CONTAINS("run.yaml:4:3: duplicate key 'distill.lr' (first at line 2)"));
  CHECK_THAT(error_of("data: {train: [a.txt]}\ndata: {seq_len: 8}\n"),
             LAWCAT_CONTAINS("run.yaml:2:1: duplicate key 'data' (first at line 1)"));
  CHECK(error_of(kMinimal).find("duplicate") == std::string::npos);
}

TEST_CASE("resolved config round-trips through YAML and JSON", "[config]") {
  RunConfig c = parse_run_config(kMinimal, "run.yaml", {"attention.window=64", "lora.lora_targets=[q_proj]"});
  RunConfig back = parse_run_config(to_yaml(c), "resolved.yaml");
  CHECK(to_json(back) == to_json(c));
  AttentionConfig a = attention_from_json(attention_to_json(c.attention), "config.json");
  CHECK(attention_to_json(a) == attention_to_json(c.attention));
  nlohmann::json bad = attention_to_json(c.attention);
  bad["colour"] = "red";
  CHECK_THROWS_WITH(attention_from_json(bad, "config.json"), LAWCAT_CONTAINS("unknown key 'lawcat.colour'"));
}

TEST_CASE("teacher sources, scratch model and training settings are checked", "[config]") {
  CHECK_THAT(error_of("data: {train: [a.txt]}\n"), LAWCAT_CONTAINS("model: no teacher"));
  CHECK(error_of("data: {train: [a.txt]}\npretrain: {enabled: true}\n").empty());
  CHECK_THAT(error_of("model: {path: a, llama2c: b.bin, llama2c_tokenizer: t.bin}\ndata: {train: [a.txt]}\n"),
             LAWCAT_CONTAINS("either model.path or model.llama2c"));
  CHECK_THAT(error_of("model: {llama2c: b.bin}\ndata: {train: [a.txt]}\n"),
             LAWCAT_CONTAINS("model.llama2c_tokenizer: required"));
  CHECK_THAT(error_of(kMinimal, {"lora.lora_dropout=0.1"}), LAWCAT_CONTAINS("lora.lora_dropout: only 0"));
  CHECK_THAT(error_of(kMinimal, {"data.val_fraction=0"}), LAWCAT_CONTAINS("leaves no validation set"));
  CHECK_THAT(error_of(kMinimal, {"distill.scheduler.min_lr=0.5"}),
             LAWCAT_CONTAINS("distill.scheduler.min_lr (0.500000) is above distill.lr"));
  CHECK_THAT(error_of(kMinimal, {"model.scratch.num_kv_heads=3"}), LAWCAT_CONTAINS("multiple of num_kv_heads"));
  CHECK_THAT(error_of(kMinimal, {"model.scratch.vocab_size=100"}), LAWCAT_CONTAINS("must be >= 260"));
  RunConfig c = parse_run_config(kMinimal, "run.yaml",
                                 {"data.separator=%", "data.add_eos=false", "model.scratch.hidden_size=128"});
  CHECK(c.data.separator == "%");
  CHECK_FALSE(c.data.add_eos);
  CHECK(c.model.scratch.hidden_size == 128);
}

TEST_CASE("fallback overrides apply only when the shared data folder is absent; CLI overrides win", "[config]") {
  auto dir = lawcat::test::scratch_dir("fallback");
  // The teacher lies under <dir>/shared/data, which does not exist: a user's machine.
  const std::string yaml =
      "model:\n  path: " + (dir / "shared" / "data" / "teacher").string() +
      "\ndata: {train: [a.txt]}\nfallback:\n  - model.path=\n  - pretrain.enabled=true\n  - data.train=[b.txt]\n";
  RunConfig c = parse_run_config(yaml, "run.yaml", {"pretrain.steps=7"});
  CHECK(c.model.path.empty());
  CHECK(c.pretrain.enabled);
  CHECK(c.pretrain.steps == 7);
  CHECK(c.data.train == std::vector<std::string>{"b.txt"});
  RunConfig d = parse_run_config(yaml, "run.yaml", {"data.train=[c.txt]"});
  CHECK(d.data.train == std::vector<std::string>{"c.txt"});
  std::filesystem::create_directories(dir / "shared" / "data" / "teacher");
  std::ofstream(dir / "shared" / "data" / "teacher" / "config.json") << "{}";
  RunConfig e = parse_run_config(yaml, "run.yaml");
  CHECK(e.model.path == (dir / "shared" / "data" / "teacher").string());
  CHECK_FALSE(e.pretrain.enabled);
  CHECK(missing_teacher(e).empty());
  // Asked for (lawcat distill --fallback): applies although the teacher is there.
  RunConfig f = parse_run_config(yaml, "run.yaml", {}, Fallback::kForce);
  CHECK(f.model.path.empty());
  CHECK(f.pretrain.enabled);
  CHECK_THAT(error_of(kMinimal, {}, Fallback::kForce), LAWCAT_CONTAINS("lists no 'fallback'"));
}

// Issue 17, case 3: a typo in the teacher path used to switch silently to the fallback
// (a fortunes teacher trained from scratch); through --set it blamed model.llama2c_tokenizer.
TEST_CASE("a missing teacher file the user named is an error naming the key, not a fallback", "[config]") {
  auto dir = lawcat::test::scratch_dir("fallback_typo");
  std::filesystem::create_directories(dir / "shared" / "data" / "models");
  std::ofstream(dir / "shared" / "data" / "models" / "tok.bin") << "x";
  std::ofstream(dir / "shared" / "data" / "models" / "model.bin") << "x";
  const std::string models = (dir / "shared" / "data" / "models").string();
  const std::string fallback =
      "fallback:\n  - model.llama2c=\n  - model.llama2c_tokenizer=\n  - pretrain.enabled=true\n";
  const std::string typo = "model:\n  llama2c: " + models + "/modle.bin\n  llama2c_tokenizer: " + models +
                           "/tok.bin\ndata: {train: [a.txt]}\n" + fallback;
  std::string e = error_of(typo, {});
  CHECK_THAT(e, LAWCAT_CONTAINS("model.llama2c: " + models + "/modle.bin does not exist"));
  CHECK_THAT(e, LAWCAT_CONTAINS("only when the whole shared data folder is absent"));
  // The same typo through --set names the key that was set (not model.llama2c_tokenizer).
  const std::string good = "model:\n  llama2c: " + models + "/model.bin\n  llama2c_tokenizer: " + models +
                           "/tok.bin\ndata: {train: [a.txt]}\n" + fallback;
  CHECK_NOTHROW(parse_run_config(good, "run.yaml"));
  e = error_of(good, {"model.llama2c=" + models + "/modle.bin"});
  CHECK_THAT(e, LAWCAT_CONTAINS("model.llama2c: " + models + "/modle.bin does not exist"));
  CHECK(e.find("llama2c_tokenizer") == std::string::npos);
  // Even where the shared data folder is absent, a path set with --set is not replaced by the fallback.
  const std::string absent = (dir / "elsewhere" / "shared" / "data" / "x.bin").string();
  CHECK_THAT(error_of(good, {"model.llama2c=" + absent}), LAWCAT_CONTAINS("model.llama2c: " + absent + " does not exist"));
  // A missing tokenizer is named as such.
  CHECK_THAT(error_of(good, {"model.llama2c_tokenizer=" + models + "/tok2.bin"}),
             LAWCAT_CONTAINS("model.llama2c_tokenizer: " + models + "/tok2.bin does not exist"));
  // run_recipe's check for configs without a fallback list.
  RunConfig nofb = parse_run_config("model: {path: " + models + "/nope}\ndata: {train: [a.txt]}\n", "run.yaml");
  try {
    check_teacher_exists(nofb);
    FAIL("expected an error");
  } catch (const lawcat::ConfigError& err) {
    CHECK_THAT(err.what(), LAWCAT_CONTAINS("model.path: " + models + "/nope does not exist"));
  }
  CHECK(absent_shared_data(absent) == dir / "elsewhere" / "shared" / "data");
  CHECK(absent_shared_data(models + "/x.bin").empty());
  CHECK(absent_shared_data("/tmp/x.bin").empty());
}

TEST_CASE("config differences name the keys", "[config]") {
  RunConfig a = parse_run_config(kMinimal, "run.yaml");
  RunConfig b = parse_run_config(kMinimal, "run.yaml", {"distill.lr=0.001", "data.train=[a.txt, b.txt]"});
  auto d = config_differences(a, b);
  REQUIRE(d.size() == 2);
  CHECK(d[0] == "data.train: [\"a.txt\"] -> [\"a.txt\",\"b.txt\"]");
  CHECK(d[1] == "distill.lr: 0.01 -> 0.001");
  CHECK(config_differences(a, a).empty());
}

TEST_CASE("every shipped run config parses and validates", "[config]") {
  const auto dir = std::filesystem::path(LAWCAT_SOURCE_DIR) / "configs";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (e.path().extension() != ".yaml" || name.rfind("sweep", 0) == 0) continue;
    CAPTURE(name);
    CHECK_NOTHROW(load_run_config(e.path()));
    ++n;
  }
  CHECK(n >= 3);
  // The quickstart's fallback (no stories260K) is a valid config too.
  std::string text = lawcat::fs::read_text(dir / "quickstart.yaml");
  const std::string from = "../shared/data/models/stories260K/stories260K.bin";
  text.replace(text.find(from), from.size(), "/nonexistent/shared/data/models/stories260K/stories260K.bin");
  RunConfig q = parse_run_config(text, "quickstart.yaml");
  CHECK(q.pretrain.enabled);
  CHECK(q.model.llama2c.empty());
  CHECK(q.data.separator == "%");
  CHECK(q.data.train.size() == 3);
}
