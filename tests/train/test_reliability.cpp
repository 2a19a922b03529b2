// Issue 17 (a user-level fault probe): data loss and misleading errors, each case
// checked the way a user meets it, through the built `lawcat` binary where that
// is the surface (a subprocess), else through the library functions the CLI calls.
// The cases and the commands that reproduced them are listed in docs/reliability.md.
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include <ATen/Parallel.h>

#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "common/catch.h"
#include "config/yaml.h"
#include "dataset/bpe_trainer.h"
#include "dataset/packing.h"
#include "io/hf_config.h"
#include "model/checkpoint.h"
#include "model/swap.h"
#include "model/llama.h"
#include "model/model_tokenizer.h"
#include "train/checkpoint.h"
#include "train/distill.h"
#include "train/finetune.h"
#include "train/loop.h"
#include "train/recipe.h"
#include "train/train_helpers.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;
namespace stdfs = std::filesystem;

namespace {

struct Cli {
  int rc = -1;
  std::string out;  // stdout and stderr
};

stdfs::path lawcat_binary() { return stdfs::path(LAWCAT_BINARY_DIR) / "lawcat"; }

// Runs `lawcat <args>` (a shell command line; paths here have no spaces) in `cwd`.
Cli run_lawcat(const std::string& args, const stdfs::path& cwd = LAWCAT_SOURCE_DIR) {
  const std::string cmd = "cd '" + cwd.string() + "' && LAWCAT_THREADS=1 '" + lawcat_binary().string() + "' " +
                          args + " 2>&1";
  Cli r;
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), &::pclose);
  REQUIRE(p);
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p.get())) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p.release());
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

#define LAWCAT_BINARY_OR_SKIP() \
  if (!stdfs::exists(lawcat_binary())) LAWCAT_SKIP("no " << lawcat_binary().string() << " (build the lawcat target)")

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return describe_exception(e);
  }
  return "";
}

struct OneThread {
  OneThread() { at::set_num_threads(1); }
};

// A tiny teacher directory (vocab 300, a BPE tokenizer learned from the corpus) and
// a run config of two 2-step stages over it; returns the YAML (output_dir <root>/run).
std::string tiny_run(const stdfs::path& root, int64_t distill_steps = 2, int64_t lora_steps = 2) {
  std::string text;
  for (int i = 0; i < 60; ++i)
    text += "the little cat number " + std::to_string(i) + " sat on the mat and looked at the sun.\n\n";
  { std::ofstream(root / "corpus.txt") << text; }
  dataset::BpeTrainOptions bo;
  bo.vocab_size = 300;
  dataset::train_llama2c_tokenizer({text}, root / "teacher" / "tokenizer.bin", bo);
  io::LlamaConfig c = test::tiny_train_config();
  c.vocab_size = 300;
  at::manual_seed(4);
  auto t = model::build_llama(c);
  train::init_from_scratch(*t, 0.2);
  model::save_llama(*t, root / "teacher");
  return "output_dir: " + (root / "run").string() + "\nthreads: 1\nmodel: {path: " + (root / "teacher").string() +
         "}\ndata: {train: [" + (root / "corpus.txt").string() +
         "], seq_len: 16, val_fraction: 0.2}\nattention: {gate_rank: 4}\n"
         "distill: {steps: " + std::to_string(distill_steps) + ", eval_every: 1, val_batches: 1, grad_accum: 1}\n"
         "lora: {steps: " + std::to_string(lora_steps) + ", eval_every: 1, val_batches: 1, grad_accum: 1}\n";
}

std::string bytes_of(const stdfs::path& p) { return fs::read_text(p); }

}  // namespace

// ---- 1. two processes in one output_dir ---------------------------------------------------------------
TEST_CASE("reliability 1: a run while another process holds the output_dir is refused naming its PID",
          "[train][reliability]") {
  OneThread one_thread;
  auto root = test::scratch_dir("rel_lock");
  const std::string yaml = tiny_run(root);
  { std::ofstream(root / "run.yaml") << yaml; }
  const std::string pid = std::to_string(::getpid());
  train::RecipeOptions ro;
  ro.progress = false;
  const auto cfg = config::parse_run_config(yaml, "run.yaml");
  {
    fs::DirLock other(root / "run");  // "the first run", still training
    CHECK_THAT(error_of([&] { train::run_recipe(cfg, ro); }),
               LAWCAT_CONTAINS((root / "run").string() + " is in use by PID " + pid));
    CHECK_FALSE(stdfs::exists(root / "run" / "config.yaml"));
    LAWCAT_BINARY_OR_SKIP();
    for (const char* extra : {"", " --resume"}) {
      CAPTURE(extra);
      Cli r = run_lawcat("distill " + (root / "run.yaml").string() + " --no-progress" + extra);
      CHECK(r.rc == 1);
      CHECK_THAT(r.out, LAWCAT_CONTAINS((root / "run").string() + " is in use by PID " + pid));
    }
    CHECK_FALSE(stdfs::exists(root / "run" / "distill"));
  }
  // The holder is gone: the run goes ahead.
  Cli ok = run_lawcat("distill " + (root / "run.yaml").string() + " --no-progress");
  CHECK(ok.rc == 0);
  CHECK(stdfs::exists(root / "run" / "export" / "model.safetensors"));
}

// ---- 2. convert validates everything before it writes --------------------------------------------------
TEST_CASE("reliability 2: convert with a bad tokenizer leaves an existing model directory as it was",
          "[train][reliability]") {
  LAWCAT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  LAWCAT_BINARY_OR_SKIP();
  const stdfs::path tok512 = bin.parent_path() / "tok512.bin";
  auto root = test::scratch_dir("rel_convert");
  const stdfs::path out = root / "model";
  Cli good = run_lawcat("convert --llama2c " + bin.string() + " --tokenizer " + tok512.string() + " --out " + out.string());
  REQUIRE(good.rc == 0);
  const std::string config = bytes_of(out / "config.json"), weights = bytes_of(out / "model.safetensors"),
                    tokenizer = bytes_of(out / "tokenizer.bin");
  auto unchanged = [&] {
    CHECK(bytes_of(out / "config.json") == config);
    CHECK(bytes_of(out / "model.safetensors") == weights);
    CHECK(bytes_of(out / "tokenizer.bin") == tokenizer);
    CHECK(model::load_model_tokenizer(out)->vocab_size() == 512);
    int entries = 0;
    for (auto& e : stdfs::directory_iterator(root)) entries += e.path().filename().string()[0] == '.';
    CHECK(entries == 0);  // no temporary directory left behind
  };
  // Random bytes as the tokenizer.
  std::string noise(5000, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  { std::ofstream(root / "random.bin", std::ios::binary) << noise; }
  Cli bad = run_lawcat("convert --llama2c " + bin.string() + " --tokenizer " + (root / "random.bin").string() +
                       " --out " + out.string());
  CHECK(bad.rc == 1);
  CHECK_THAT(bad.out, LAWCAT_CONTAINS((root / "random.bin").string()));
  unchanged();
  // A valid tokenizer of another model (32000 tokens for a 512-token model).
  const stdfs::path llama2_tok = bin.parent_path().parent_path().parent_path() / "tokenizers" / "llama2" / "tokenizer.bin";
  if (stdfs::exists(llama2_tok)) {
    Cli other = run_lawcat("convert --llama2c " + bin.string() + " --tokenizer " + llama2_tok.string() + " --out " +
                           out.string());
    CHECK(other.rc == 1);
    CHECK_THAT(other.out, LAWCAT_CONTAINS("32000 tokens"));
    unchanged();
  }
  // A truncated checkpoint.
  { std::ofstream(root / "cut.bin", std::ios::binary) << bytes_of(bin).substr(0, 5000); }
  Cli cut = run_lawcat("convert --llama2c " + (root / "cut.bin").string() + " --tokenizer " + tok512.string() +
                       " --out " + out.string());
  CHECK(cut.rc == 1);
  CHECK_THAT(cut.out, LAWCAT_CONTAINS("truncated"));
  unchanged();
  // A folder holding other files is never replaced (convert replaces the whole directory).
  fs::atomic_write_text(root / "notes" / "mine.txt", "keep");
  Cli notes = run_lawcat("convert --llama2c " + bin.string() + " --tokenizer " + tok512.string() + " --out " +
                         (root / "notes").string());
  CHECK(notes.rc == 1);
  CHECK_THAT(notes.out, LAWCAT_CONTAINS("mine.txt"));
  CHECK(bytes_of(root / "notes" / "mine.txt") == "keep");
  // Converting again over the good directory replaces it whole.
  Cli again = run_lawcat("convert --llama2c " + bin.string() + " --tokenizer " + tok512.string() + " --out " + out.string());
  CHECK(again.rc == 0);
  unchanged();
}

// ---- 3. a typo in the teacher path ---------------------------------------------------------------------
TEST_CASE("reliability 3: a misspelled model.llama2c is an error naming the key, not the fallback teacher",
          "[train][reliability]") {
  LAWCAT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  LAWCAT_BINARY_OR_SKIP();
  auto root = test::scratch_dir("rel_typo");
  const stdfs::path typo = bin.parent_path() / "stories260X.bin";
  const std::string yaml = "output_dir: " + (root / "run").string() + "\nmodel:\n  llama2c: " + typo.string() +
                           "\n  llama2c_tokenizer: " + (bin.parent_path() / "tok512.bin").string() +
                           "\ndata: {train: [" + (bin.parent_path() / "stories260K.md").string() + "]}\n"
                           "fallback:\n  - model.llama2c=\n  - model.llama2c_tokenizer=\n  - pretrain.enabled=true\n";
  { std::ofstream(root / "typo.yaml") << yaml; }
  Cli r = run_lawcat("distill " + (root / "typo.yaml").string() + " --no-progress");
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, LAWCAT_CONTAINS("model.llama2c: " + typo.string() + " does not exist"));
  CHECK_FALSE(stdfs::exists(root / "run"));
  // The same typo through --set on a correct config names model.llama2c.
  std::string fixed = yaml;
  fixed.replace(fixed.find(typo.string()), typo.string().size(), bin.string());
  { std::ofstream(root / "good.yaml") << fixed; }
  Cli s = run_lawcat("distill " + (root / "good.yaml").string() + " --no-progress --set model.llama2c=" + typo.string());
  CHECK(s.rc == 1);
  CHECK_THAT(s.out, LAWCAT_CONTAINS("model.llama2c: " + typo.string() + " does not exist"));
  CHECK(s.out.find("llama2c_tokenizer") == std::string::npos);
  CHECK_FALSE(stdfs::exists(root / "run"));
}

// ---- 5. tokenizer vs model vocabulary ------------------------------------------------------------------
TEST_CASE("reliability 5: a tokenizer that does not fit the model's vocabulary fails at load, naming both files",
          "[train][reliability]") {
  OneThread one_thread;
  auto root = test::scratch_dir("rel_vocab");
  tiny_run(root);  // teacher/: vocab 300, tokenizer.bin of 300 tokens
  const stdfs::path tok = root / "teacher" / "tokenizer.bin";
  CHECK(model::load_model_tokenizer(root / "teacher")->vocab_size() == 300);
  auto model_with_vocab = [&](const std::string& name, int64_t vocab) {
    io::LlamaConfig c = test::tiny_train_config();
    c.vocab_size = vocab;
    model::save_llama(*model::build_llama(c), root / name);
    stdfs::copy_file(tok, root / name / "tokenizer.bin");
    return root / name;
  };
  const stdfs::path small = model_with_vocab("small", 64), big = model_with_vocab("big", 1000);
  std::string e = error_of([&] { model::load_model_tokenizer(small); });
  CHECK_THAT(e, LAWCAT_CONTAINS((small / "tokenizer.bin").string() + " has 300 tokens, more than the vocab_size 64 of " +
                                (small / "config.json").string()));
  e = error_of([&] { model::load_model_tokenizer(big); });
  CHECK_THAT(e, LAWCAT_CONTAINS((big / "tokenizer.bin").string() + " has 300 tokens, fewer than half the vocab_size 1000 of " +
                                (big / "config.json").string()));
  CHECK_NOTHROW(model::load_model_tokenizer(model_with_vocab("padded", 320)));  // a little padding is normal
  // The CLI: a clear error, not a stack trace at the first forward.
  LAWCAT_BINARY_OR_SKIP();
  Cli r = run_lawcat("generate --model " + small.string() + " --max-new-tokens 4");
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, LAWCAT_CONTAINS("more than the vocab_size 64"));
  // Real models keep working; a 100-byte tokenizer.bin is refused.
  // (each real model only where this machine's shared data has it: the GPU machine carries a subset)
  auto shared = test::shared_data();
  if (shared.empty()) return;
  if (std::filesystem::exists(shared / "models" / "retriever13m"))
    CHECK(model::load_model_tokenizer(shared / "models" / "retriever13m")->vocab_size() == 8192);
  if (!std::filesystem::exists(shared / "models/stories260K/stories260K.bin")) return;
  Cli conv = run_lawcat("convert --llama2c " + (shared / "models/stories260K/stories260K.bin").string() +
                        " --tokenizer " + (shared / "models/stories260K/tok512.bin").string() + " --out " +
                        (root / "stories").string());
  REQUIRE(conv.rc == 0);
  CHECK(model::load_model_tokenizer(root / "stories")->vocab_size() == 512);
  fs::atomic_write_text(root / "stories" / "tokenizer.bin", bytes_of(shared / "models/stories260K/tok512.bin").substr(0, 100));
  Cli ppl = run_lawcat("ppl --model " + (root / "stories").string() + " --text " +
                       (shared / "models/stories260K/stories260K.md").string());
  CHECK(ppl.rc == 1);
  CHECK_THAT(ppl.out, LAWCAT_CONTAINS("has 7 tokens, fewer than half the vocab_size 512"));
}

// ---- 7. a state.json without its keys ------------------------------------------------------------------
TEST_CASE("reliability 7: resuming from a state.json without its keys names the file and the key",
          "[train][reliability]") {
  OneThread one_thread;
  auto data = [] {
    dataset::TokenizedCorpus c;
    c.files = {"synthetic"};
    c.doc_offsets = {0};
    at::manual_seed(3);
    for (int d = 0; d < 24; ++d) {
      at::Tensor t = at::randint(3, 64, {40}, at::kLong);
      c.tokens.push_back(1);
      for (int64_t i = 0; i < 40; ++i) c.tokens.push_back(static_cast<int32_t>(t[i].item<int64_t>()));
      c.doc_offsets.push_back(c.num_tokens());
    }
    return dataset::make_splits(c, nullptr, 16, 0.2, 3);
  }();
  at::Tensor w = at::zeros({4}, at::kFloat).set_requires_grad(true);
  train::StageSpec spec;
  spec.name = "toy";
  spec.cfg.steps = 4;
  spec.cfg.batch_size = 2;
  spec.cfg.grad_accum = 1;
  spec.cfg.eval_every = 2;
  spec.cfg.val_batches = 1;
  spec.cfg.keep_last = 2;
  spec.params = {{"w", w}};
  spec.loss = [&](const at::Tensor& b) { return (w - b.narrow(1, 0, 4).to(at::kFloat) / 64).pow(2).mean(); };
  train::LoopOptions lo;
  lo.dir = test::scratch_dir("rel_state");
  lo.progress = false;
  lo.tokens_per_example = 16;
  train::run_stage(spec, data, lo);
  const stdfs::path state = lo.dir / "checkpoints" / train::step_dir_name(4) / "state.json";
  REQUIRE(stdfs::exists(state));
  const nlohmann::json good = nlohmann::json::parse(bytes_of(state));
  lo.resume = true;
  auto resume_with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    fs::atomic_write_text(state, j.dump(2));
    return error_of([&] { train::run_stage(spec, data, lo); });
  };
  CHECK_THAT(resume_with([](nlohmann::json& j) { j.erase("step"); }),
             LAWCAT_CONTAINS(state.string() + ": missing key 'step'"));
  CHECK_THAT(resume_with([](nlohmann::json& j) { j.erase("adam_steps"); }),
             LAWCAT_CONTAINS(state.string() + ": missing key 'adam_steps'"));
  CHECK_THAT(resume_with([](nlohmann::json& j) { j["loader"].erase("epoch"); }),
             LAWCAT_CONTAINS(state.string() + ": missing key 'loader.epoch'"));
  CHECK_THAT(resume_with([](nlohmann::json& j) { j["tokens"] = "many"; }), LAWCAT_CONTAINS(state.string() + ": "));
  CHECK_THAT(resume_with([](nlohmann::json& j) { j["scheduler"] = nlohmann::json::object(); }),
             LAWCAT_CONTAINS(state.string() + ": "));
  // 9 (the loop's own guard): fewer steps than the checkpoint has done.
  fs::atomic_write_text(state, good.dump(2));
  spec.cfg.steps = 3;
  CHECK_THAT(error_of([&] { train::run_stage(spec, data, lo); }),
             LAWCAT_CONTAINS("toy.steps: 3 is fewer than the 4 steps already done"));
}

// ---- 8. CLI ranges -----------------------------------------------------------------------------------------
TEST_CASE("reliability 8: out-of-range CLI values give one short message", "[train][reliability]") {
  LAWCAT_BINARY_OR_SKIP();
  const std::pair<const char*, const char*> cases[] = {
      {"generate --model nowhere --max-new-tokens 0", "--max-new-tokens: must be >= 1, got 0"},
      {"generate --model nowhere --temperature -1", "--temperature: must be >= 0, got -1"},
      {"generate --model nowhere --top-p 0", "--top-p: must be in (0, 1], got 0"},
      {"generate --model nowhere --top-p 1.5", "--top-p: must be in (0, 1], got 1.5"},
      {"ppl --model nowhere --text nothing --ctx 0", "--ctx: must be >= 1, got 0"},
      {"eval --task passkey --models nowhere --samples 0", "--samples: must be >= 1, got 0"},
  };
  for (const auto& [args, message] : cases) {
    CAPTURE(args);
    Cli r = run_lawcat(args);
    CHECK(r.rc != 0);
    CHECK_THAT(r.out, LAWCAT_CONTAINS(message));
    CHECK(r.out.size() < 200);  // not a 309-digit bound
  }
}

// ---- 9. resume: never backwards; config.yaml only rewritten when a stage runs ------------------------------
TEST_CASE("reliability 9: resume refuses fewer steps than done and keeps config.yaml when nothing runs",
          "[train][reliability]") {
  OneThread one_thread;
  auto root = test::scratch_dir("rel_resume");
  const std::string yaml = tiny_run(root, 2, 3);
  train::RecipeOptions ro;
  ro.progress = false;
  // Interrupted in the LoRA stage after step 2 of 3.
  train::RecipeOptions cut = ro;
  cut.after_step = [](const std::string& stage, int64_t step) {
    if (stage == "lora" && step == 2) ::raise(SIGINT);
  };
  train::install_signal_handlers();
  auto part = train::run_recipe(config::parse_run_config(yaml, "run.yaml"), cut);
  train::stop_flag() = false;
  REQUIRE(part.interrupted);
  const stdfs::path saved = root / "run" / "config.yaml";
  const std::string before = bytes_of(saved);
  ro.resume = true;
  // Fewer steps than a checkpoint holds: refused, config.yaml untouched.
  std::string e = error_of([&] { train::run_recipe(config::parse_run_config(yaml, "run.yaml", {"lora.steps=1"}), ro); });
  CHECK_THAT(e, LAWCAT_CONTAINS("lora.steps: 1 is fewer than the 2 steps this run has already done"));
  CHECK_THAT(e, LAWCAT_CONTAINS("step-00000002"));
  // Fewer steps than a finished stage did: refused too.
  e = error_of([&] { train::run_recipe(config::parse_run_config(yaml, "run.yaml", {"distill.steps=1"}), ro); });
  CHECK_THAT(e, LAWCAT_CONTAINS("distill.steps: 1 is fewer than the 2 steps"));
  CHECK_THAT(e, LAWCAT_CONTAINS("done.json"));
  CHECK(bytes_of(saved) == before);
  // The resume that finishes the run records its config.
  auto done = train::run_recipe(config::parse_run_config(yaml, "run.yaml", {"lora.keep_last=5"}), ro);
  CHECK_FALSE(done.interrupted);
  const std::string finished = bytes_of(saved);
  CHECK_THAT(finished, LAWCAT_CONTAINS("keep_last: 5"));
  // A finished run resumed with more steps trains nothing, so config.yaml keeps what ran.
  auto again = train::run_recipe(config::parse_run_config(yaml, "run.yaml", {"lora.steps=12", "lora.keep_last=5"}), ro);
  CHECK(again.stages.size() == 2);
  CHECK(again.stages[1].steps == 3);
  CHECK(bytes_of(saved) == finished);
}

// ---- 4. config.json checked against the safetensors headers before anything is built ------------------------
TEST_CASE("reliability 4: a config.json that does not fit its weights is refused before any module is built",
          "[train][reliability]") {
  OneThread one_thread;
  auto root = test::scratch_dir("rel_config_fit");
  tiny_run(root);  // teacher/: 2 layers, hidden 32, vocab 300
  auto with_config = [&](const std::string& name, const std::string& key, int64_t value) {
    const stdfs::path dir = root / name;
    stdfs::create_directories(dir);
    for (const char* f : {"model.safetensors", "tokenizer.bin"}) stdfs::copy_file(root / "teacher" / f, dir / f);
    nlohmann::json j = nlohmann::json::parse(bytes_of(root / "teacher" / "config.json"));
    j[key] = value;
    fs::atomic_write_text(dir / "config.json", j.dump(2));
    return dir;
  };
  const stdfs::path layers = with_config("layers", "num_hidden_layers", 1000000);
  const stdfs::path hidden = with_config("hidden", "hidden_size", 1000000000);
  const stdfs::path vocab = with_config("vocab", "vocab_size", 1000000000);
  std::string e = error_of([&] { model::load_llama(layers, at::kCPU, at::kFloat); });
  CHECK_THAT(e, LAWCAT_CONTAINS((layers / "config.json").string() + " does not fit the weights in " + layers.string()));
  CHECK_THAT(e, LAWCAT_CONTAINS("num_hidden_layers 1000000, but the weights hold layers 0..1 (no model.layers.2.*)"));
  e = error_of([&] { model::load_llama(vocab, at::kCPU, at::kFloat); });
  CHECK_THAT(e, LAWCAT_CONTAINS("tensor model.embed_tokens.weight in " + (vocab / "model.safetensors").string() +
                                ": expected shape [1000000000, 32], got [300, 32] (from vocab_size, hidden_size)"));
  CHECK_NOTHROW(model::load_llama(root / "teacher", at::kCPU, at::kFloat));
  // The CLI: one error naming the file and the tensor, quickly (it used to build 11 GB of
  // modules, or end in an allocator error with a 25-frame trace).
  LAWCAT_BINARY_OR_SKIP();
  for (const auto& [dir, message] : {std::pair{layers, std::string("num_hidden_layers 1000000")},
                                     std::pair{hidden, std::string("model.embed_tokens.weight in ")},
                                     std::pair{vocab, std::string("expected shape [1000000000, 32], got [300, 32]")}}) {
    CAPTURE(dir);
    Cli r = run_lawcat("ppl --model " + dir.string() + " --text " + (root / "corpus.txt").string(), root);
    CHECK(r.rc == 1);
    CHECK_THAT(r.out, LAWCAT_CONTAINS(message));
    CHECK_THAT(r.out, LAWCAT_CONTAINS((dir / "config.json").string()));
    CHECK(r.out.find("frame #") == std::string::npos);
  }
  // A LAWCAT export (model::load_model) is checked the same way.
  { std::ofstream(root / "run.yaml") << tiny_run(root); }
  REQUIRE(run_lawcat("distill " + (root / "run.yaml").string() + " --no-progress").rc == 0);
  const stdfs::path exported = root / "run" / "export";
  nlohmann::json j = nlohmann::json::parse(bytes_of(exported / "config.json"));
  j["num_hidden_layers"] = 1000000;
  fs::atomic_write_text(exported / "config.json", j.dump(2));
  Cli r = run_lawcat("ppl --model " + exported.string() + " --text " + (root / "corpus.txt").string(), root);
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, LAWCAT_CONTAINS("num_hidden_layers 1000000, but the weights hold layers 0..1"));
}

// ---- 6. eval lengths: bounded, and a length past the softmax positions is said up front --------------------
TEST_CASE("reliability 6: eval refuses absurd lengths and warns before building past max_position_embeddings",
          "[train][reliability]") {
  LAWCAT_BINARY_OR_SKIP();
  OneThread one_thread;
  auto root = test::scratch_dir("rel_eval_lengths");
  tiny_run(root);  // teacher/: max_position_embeddings 64, softmax attention
  const std::string base = "eval --models " + (root / "teacher").string() + " --no-plot --no-progress --out ";
  Cli big = run_lawcat(base + (root / "big").string() + " --task passkey --samples 1 --depths 50 --lengths 100000000");
  CHECK(big.rc == 1);
  CHECK_THAT(big.out, LAWCAT_CONTAINS("--lengths 100000000 is above the limit of 1048576 tokens"));
  Cli far = run_lawcat(base + (root / "far").string() + " --task ppl --lengths 100 --text " +
                       (root / "corpus.txt").string());
  CHECK(far.rc == 0);
  CHECK_THAT(far.out, LAWCAT_CONTAINS("length 100 is beyond max_position_embeddings 64 of its softmax attention"));
}

// ---- 10a. duplicate YAML keys ------------------------------------------------------------------------------
TEST_CASE("reliability 10a: a key given twice in the YAML is an error naming file:line and the key",
          "[train][reliability]") {
  auto root = test::scratch_dir("rel_dup_keys");
  const std::string yaml = tiny_run(root) + "distill:\n  lr: 0.5\n";  // a second 'distill' section
  { std::ofstream(root / "dup.yaml") << yaml; }
  std::string e = error_of([&] { config::load_run_config(root / "dup.yaml"); });
  const int line = static_cast<int>(std::count(yaml.begin(), yaml.end(), '\n')) - 1;
  CHECK_THAT(e, LAWCAT_CONTAINS((root / "dup.yaml").string() + ":" + std::to_string(line) +
                                ":1: duplicate key 'distill' (first at line"));
  e = error_of([&] { config::parse_run_config("distill:\n  lr: 0.1\n  steps: 3\n  lr: 0.2\n", "x.yaml"); });
  CHECK_THAT(e, LAWCAT_CONTAINS("x.yaml:4:3: duplicate key 'distill.lr' (first at line 2)"));
  LAWCAT_BINARY_OR_SKIP();
  Cli r = run_lawcat("distill " + (root / "dup.yaml").string() + " --no-progress");
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, LAWCAT_CONTAINS("duplicate key 'distill'"));
  CHECK_FALSE(stdfs::exists(root / "run"));
}

// ---- 10b. sweep --dry-run checks every run; an unknown metric is an error -----------------------------------
TEST_CASE("reliability 10b: sweep --dry-run loads and checks every run's config; an unknown metric is an error",
          "[train][reliability]") {
  LAWCAT_BINARY_OR_SKIP();
  auto root = test::scratch_dir("rel_sweep_dry");
  { std::ofstream(root / "run.yaml") << tiny_run(root); }
  const std::string head = "base: " + (root / "run.yaml").string() + "\noutput_dir: " + (root / "sweep").string() + "\n";
  { std::ofstream(root / "bad_runs.yaml") << head + "grid:\n  attention.conv_width: [2, 99]\n  distill.steps: [1, many]\n"; }
  Cli r = run_lawcat("sweep " + (root / "bad_runs.yaml").string() + " --dry-run");
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, LAWCAT_CONTAINS("3 problem(s) in sweep"));
  CHECK_THAT(r.out, LAWCAT_CONTAINS("run conv_width-99_steps-1: "));
  CHECK_THAT(r.out, LAWCAT_CONTAINS("attention.conv_width: 99 is above the supported maximum 16"));
  CHECK_THAT(r.out, LAWCAT_CONTAINS("run conv_width-2_steps-many: "));
  CHECK_THAT(r.out, LAWCAT_CONTAINS("key 'distill.steps': expected an integer, got 'many'"));
  CHECK_FALSE(stdfs::exists(root / "sweep"));
  { std::ofstream(root / "metric.yaml") << head + "grid:\n  attention.conv_width: [2, 4]\nmetric: distill.best_vall\n"; }
  Cli m = run_lawcat("sweep " + (root / "metric.yaml").string() + " --dry-run");
  CHECK(m.rc == 1);
  CHECK_THAT(m.out, LAWCAT_CONTAINS(":5:9: unknown metric 'distill.best_vall'"));
  { std::ofstream(root / "good.yaml") << head + "grid:\n  attention.conv_width: [2, 4]\nmetric: lora.ppl\n"; }
  Cli ok = run_lawcat("sweep " + (root / "good.yaml").string() + " --dry-run");
  CHECK(ok.rc == 0);
  CHECK_THAT(ok.out, LAWCAT_CONTAINS("conv_width-4: ok"));
  // --dry-run --shard lists the shard's runs only, as the real --shard runs them.
  Cli shard = run_lawcat("sweep " + (root / "good.yaml").string() + " --dry-run --shard 1/2");
  CHECK(shard.rc == 0);
  CHECK_THAT(shard.out, LAWCAT_CONTAINS("2 runs under " + (root / "sweep").string() + ", 1 in shard 1/2"));
  CHECK_THAT(shard.out, LAWCAT_CONTAINS("conv_width-4: ok"));
  CHECK(shard.out.find("conv_width-2") == std::string::npos);
  // A bad --shard is a usage error (exit 2), "0/2/3" included.
  for (const char* bad : {"5/2", "0/2/3", "2/2", "1/0", "a/2"}) {
    CAPTURE(bad);
    Cli b = run_lawcat("sweep " + (root / "good.yaml").string() + " --dry-run --shard " + bad);
    CHECK(b.rc == 2);
    CHECK_THAT(b.out, LAWCAT_CONTAINS("--shard: expected i/n, whole numbers with 0 <= i < n, got '" + std::string(bad)));
  }
  // --only: names trimmed; on a sweep without variants, says that it picks variants.
  { std::ofstream(root / "variants.yaml") << head + "variants:\n  lawcat: []\n  nowin: [attention.window=0]\n"; }
  Cli only = run_lawcat("sweep " + (root / "variants.yaml").string() + " --dry-run --only 'lawcat, nowin'");
  CHECK(only.rc == 0);
  CHECK_THAT(only.out, LAWCAT_CONTAINS("nowin: ok"));
  Cli unknown = run_lawcat("sweep " + (root / "variants.yaml").string() + " --dry-run --only x");
  CHECK(unknown.rc == 1);
  CHECK_THAT(unknown.out, LAWCAT_CONTAINS("'x' is not a variant of " + (root / "variants.yaml").string() +
                                          " (variants: lawcat, nowin)"));
  Cli grid_only = run_lawcat("sweep " + (root / "good.yaml").string() + " --dry-run --only x");
  CHECK(grid_only.rc == 1);
  CHECK_THAT(grid_only.out, LAWCAT_CONTAINS("--only picks variants, and " + (root / "good.yaml").string() +
                                            " has no 'variants:'"));
}

// ---- 10g. sweep: a finished run is skipped only under its own config; the plot per variant -----------------
TEST_CASE("reliability 10g: sweep reruns refuse a changed config of finished runs; one plot line per variant",
          "[train][reliability]") {
  LAWCAT_BINARY_OR_SKIP();
  auto root = test::scratch_dir("rel_sweep_rerun");
  { std::ofstream(root / "run.yaml") << tiny_run(root); }
  const stdfs::path out = root / "sweep";
  const std::string sweep = "sweep " + (root / "sweep.yaml").string() + " ";
  // Values in an order that is neither numeric nor text order; 2 variants x 2 x 2 runs.
  { std::ofstream(root / "sweep.yaml") << "base: " + (root / "run.yaml").string() + "\noutput_dir: " + out.string() +
                                             "\nset: [lora.enabled=false]\nvariants:\n  lawcat: []\n"
                                             "  tau8: [attention.gate_tau=8]\ngrid:\n  attention.conv_width: [16, 2]\n"
                                             "  attention.gate_rank: [4, 2]\n"; }
  Cli first = run_lawcat(sweep);
  REQUIRE(first.rc == 0);
  // results.dat: a block per variant and conv width, conv width by value (2 before 16), x ascending.
  const std::string dat = bytes_of(out / "results.dat");
  std::vector<std::string> blocks;
  for (size_t at = dat.find("# "); at != std::string::npos; at = dat.find("# ", at + 1))
    blocks.push_back(dat.substr(at + 2, dat.find('\n', at) - at - 2));
  CHECK(blocks == std::vector<std::string>{"lawcat, conv_width=2", "lawcat, conv_width=16", "tau8, conv_width=2",
                                           "tau8, conv_width=16"});
  CHECK(dat.find("# lawcat, conv_width=2\n2 ") != std::string::npos);
  CHECK_THAT(bytes_of(out / "results.gp"), LAWCAT_CONTAINS("index 3 using 1:2 with linespoints pt 7 lw 2 title 'tau8, conv_width=16'"));

  // A changed config: refused before anything runs, naming each run's folder and the keys.
  const std::string table = bytes_of(out / "results.csv");
  const stdfs::path one = out / "lawcat_conv_width-16_gate_rank-4";
  const std::string saved = bytes_of(one / "config.yaml");
  Cli lr = run_lawcat(sweep + "--set distill.lr=0.005 --set attention.window=8");
  CHECK(lr.rc == 1);
  CHECK_THAT(lr.out, LAWCAT_CONTAINS("8 problem(s) in sweep"));
  CHECK_THAT(lr.out, LAWCAT_CONTAINS("cannot resume " + one.string() + " with a different config (saved -> now):\n"
                                     "      attention.window: 0 -> 8\n      distill.lr: 0.01 -> 0.005\n"));
  CHECK(lr.out.find("finished earlier, skipped") == std::string::npos);
  CHECK(bytes_of(out / "results.csv") == table);
  CHECK(bytes_of(one / "config.yaml") == saved);
  // --dry-run says the same, for its shard's runs.
  Cli dry = run_lawcat(sweep + "--dry-run --shard 0/2 --set distill.lr=0.005");
  CHECK(dry.rc == 1);
  CHECK_THAT(dry.out, LAWCAT_CONTAINS("4 problem(s) in sweep"));
  CHECK_THAT(dry.out, LAWCAT_CONTAINS(one.string() + " with a different config"));
  // Steps: fewer than a finished stage did is refused, more is ignored with distill's warning.
  Cli fewer = run_lawcat(sweep + "--set distill.steps=1");
  CHECK(fewer.rc == 1);
  CHECK_THAT(fewer.out, LAWCAT_CONTAINS("distill.steps: 1 is fewer than the 2 steps this run has already done (" +
                                        (one / "distill" / "done.json").string()));
  Cli more = run_lawcat(sweep + "--set distill.steps=3");
  CHECK(more.rc == 0);
  CHECK_THAT(more.out, LAWCAT_CONTAINS(one.string() + ": distill: finished earlier after 2 steps; distill.steps=3 "
                                       "is ignored"));
  CHECK_THAT(more.out, LAWCAT_CONTAINS("[8/8] tau8_conv_width-2_gate_rank-2: finished earlier, skipped"));
  CHECK(bytes_of(one / "config.yaml") == saved);
  // A harmless key: skipped as before, the same numbers in the table.
  Cli same = run_lawcat(sweep + "--set distill.keep_last=3");
  CHECK(same.rc == 0);
  CHECK(same.out.find("warning") == std::string::npos);
  std::string skipped = table;
  for (size_t at; (at = skipped.find(",done\n")) != std::string::npos;) skipped.replace(at, 6, ",done earlier\n");
  CHECK(bytes_of(out / "results.csv") == skipped);
  // The same folder spelled another way is the same runs, not a changed config.
  Cli dotted = run_lawcat(sweep + "--dry-run --output-dir " + (root / "." / "sweep").string());
  INFO(dotted.out);
  CHECK(dotted.rc == 0);
  // A stage newly enabled (lora.enabled, a harmless key): the finished runs are resumed and train it.
  Cli lora = run_lawcat(sweep + "--only lawcat --set lora.enabled=true");
  INFO(lora.out);
  CHECK(lora.rc == 0);
  CHECK(lora.out.find("finished earlier, skipped") == std::string::npos);
  CHECK(stdfs::exists(one / "lora" / "done.json"));
  CHECK(!stdfs::exists(out / "tau8_conv_width-2_gate_rank-2" / "lora"));
  // A stage newly enabled before a finished one (pretrain before distill): refused, the later
  // stage's weights were trained without it.
  Cli early = run_lawcat(sweep + "--only lawcat --set pretrain.enabled=true");
  INFO(early.out);
  CHECK(early.rc == 1);
  CHECK_THAT(early.out, LAWCAT_CONTAINS("pretrain is now enabled, but this run finished distill without it"));
}

// ---- 10c, 10d. ppl: NaN weights and non-UTF-8 text are errors -----------------------------------------------
TEST_CASE("reliability 10c/10d: ppl fails on NaN weights (naming the model) and on non-UTF-8 text (file, offset)",
          "[train][reliability]") {
  LAWCAT_BINARY_OR_SKIP();
  OneThread one_thread;
  auto root = test::scratch_dir("rel_ppl_nan");
  tiny_run(root);
  {
    auto m = model::load_llama(root / "teacher", at::kCPU, at::kFloat);
    at::NoGradGuard no_grad;
    m->model->norm->weight.fill_(std::numeric_limits<float>::quiet_NaN());
    model::save_llama(*m, root / "nan");
    stdfs::copy_file(root / "teacher" / "tokenizer.bin", root / "nan" / "tokenizer.bin");
  }
  const std::string text = (root / "corpus.txt").string();
  Cli r = run_lawcat("ppl --model " + (root / "nan").string() + " --text " + text);
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, LAWCAT_CONTAINS("model " + (root / "nan").string() + ": the mean NLL on " + text + " is nan"));
  for (const char* task : {"ppl", "longppl"}) {
    CAPTURE(task);
    Cli e = run_lawcat(std::string("eval --task ") + task + " --models " + (root / "nan").string() + " --text " + text +
                       " --lengths 32 --bucket 16 --no-plot --no-progress --out " +
                       (root / (std::string("eval_") + task)).string());
    CHECK(e.rc == 1);
    CHECK_THAT(e.out, LAWCAT_CONTAINS("model " + (root / "nan").string() + ": the mean NLL at length"));
  }
  Cli good = run_lawcat("ppl --model " + (root / "teacher").string() + " --text " + text);
  CHECK(good.rc == 0);
  // 10d: bytes that are not UTF-8 (distill's reader refuses them too).
  std::string noise = "some text\n\n";
  for (int i = 0; i < 200; ++i) noise += static_cast<char>((i * 2654435761u) >> 13);
  { std::ofstream(root / "noise.txt", std::ios::binary) << noise; }
  Cli bad = run_lawcat("ppl --model " + (root / "teacher").string() + " --text " + (root / "noise.txt").string());
  CHECK(bad.rc == 1);
  CHECK_THAT(bad.out, LAWCAT_CONTAINS((root / "noise.txt").string() + ": not valid UTF-8 at byte offset "));
}

// ---- 10e. fatal errors reach run.log ------------------------------------------------------------------------
TEST_CASE("reliability 10e: the error that stops a run is written to its run.log", "[train][reliability]") {
  LAWCAT_BINARY_OR_SKIP();
  auto root = test::scratch_dir("rel_runlog");
  { std::ofstream(root / "run.yaml") << tiny_run(root); }
  Cli ok = run_lawcat("distill " + (root / "run.yaml").string() + " --no-progress");
  REQUIRE(ok.rc == 0);
  Cli r = run_lawcat("distill " + (root / "run.yaml").string() + " --no-progress --resume --set lora.steps=1");
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, LAWCAT_CONTAINS("lora.steps: 1 is fewer than the 2 steps"));
  const std::string log = bytes_of(root / "run" / "run.log");
  CHECK_THAT(log, LAWCAT_CONTAINS("error lawcat: error: lora.steps: 1 is fewer than the 2 steps"));
}

// ---- 10f. a damaged newest checkpoint: resume falls back to the previous good one ---------------------------
TEST_CASE("reliability 10f: resume falls back to the newest checkpoint that loads, warning about the bad one",
          "[train][reliability]") {
  OneThread one_thread;
  dataset::DataSplits data = [] {
    dataset::TokenizedCorpus c;
    c.files = {"synthetic"};
    c.doc_offsets = {0};
    at::manual_seed(3);
    for (int d = 0; d < 24; ++d) {
      at::Tensor t = at::randint(3, 64, {40}, at::kLong);
      c.tokens.push_back(1);
      for (int64_t i = 0; i < 40; ++i) c.tokens.push_back(static_cast<int32_t>(t[i].item<int64_t>()));
      c.doc_offsets.push_back(c.num_tokens());
    }
    return dataset::make_splits(c, nullptr, 16, 0.2, 3);
  }();
  auto run = [&](const stdfs::path& dir, bool resume) {
    at::manual_seed(5);
    at::Tensor w = at::zeros({4}, at::kFloat).set_requires_grad(true);
    train::StageSpec spec;
    spec.name = "toy";
    spec.cfg.steps = 4;
    spec.cfg.batch_size = 2;
    spec.cfg.grad_accum = 1;
    spec.cfg.eval_every = 2;
    spec.cfg.val_batches = 1;
    spec.cfg.keep_last = 2;
    spec.params = {{"w", w}};
    spec.loss = [&](const at::Tensor& b) { return (w - b.narrow(1, 0, 4).to(at::kFloat) / 64).pow(2).mean(); };
    train::LoopOptions lo;
    lo.dir = dir;
    lo.progress = false;
    lo.tokens_per_example = 16;
    lo.resume = resume;
    auto r = train::run_stage(spec, data, lo);
    return std::pair{r, w.detach().clone()};
  };
  const stdfs::path whole_dir = test::scratch_dir("rel_fallback_whole");
  const auto [whole, w_whole] = run(whole_dir, false);
  // metrics.jsonl without the timings.
  auto metrics_of = [](const stdfs::path& d) {
    std::string out;
    std::istringstream in(bytes_of(d / "metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      j.erase("tokens_per_s");
      j.erase("elapsed_s");
      out += j.dump() + "\n";
    }
    return out;
  };
  const stdfs::path dir = test::scratch_dir("rel_fallback");
  run(dir, false);
  const stdfs::path bad = dir / "checkpoints" / train::step_dir_name(4);
  REQUIRE(stdfs::exists(dir / "checkpoints" / train::step_dir_name(2) / "state.json"));
  const std::string weights = bytes_of(bad / "trainable.safetensors");
  fs::atomic_write_text(bad / "trainable.safetensors", weights.substr(0, weights.size() / 2));  // cut short
  auto [resumed, w_resumed] = run(dir, true);
  CHECK(resumed.start_step == 2);
  CHECK(resumed.steps == 4);
  CHECK(at::equal(w_resumed, w_whole));
  CHECK(metrics_of(dir) == metrics_of(whole_dir));
  // Every checkpoint damaged: the newest one's error, naming it.
  for (const int64_t step : {2, 4}) {
    const stdfs::path ck = dir / "checkpoints" / train::step_dir_name(step);
    fs::atomic_write_text(ck / "trainable.safetensors", "x");
  }
  CHECK_THAT(error_of([&] { run(dir, true); }), LAWCAT_CONTAINS("while resuming from " + bad.string()));
}

// ---- bad input on the command line: each error names the file / option and exits non-zero ------------
TEST_CASE("CLI: prompts that are not UTF-8, sampled bytes, a folder as config, out-of-range options",
          "[train][reliability]") {
  LAWCAT_BINARY_OR_SKIP();
  OneThread one_thread;
  auto root = test::scratch_dir("rel_cli_input");
  tiny_run(root);
  const std::string teacher = (root / "teacher").string();
  // A prompt file whose line 2 is not UTF-8: refused up front, naming the file and the line.
  { std::ofstream(root / "bad.txt") << "the little cat\n\xff\xfe bad\n"; }
  Cli bad = run_lawcat("generate --model " + teacher + " --prompts " + (root / "bad.txt").string());
  CHECK(bad.rc == 1);
  CHECK_THAT(bad.out, LAWCAT_CONTAINS((root / "bad.txt").string() + ":2: not valid UTF-8 text"));
  // Sampling at a high temperature from a random model picks byte tokens that are not whole
  // characters: every prompt still gets its JSON line (such bytes become U+FFFD).
  { std::ofstream(root / "ok.txt") << "the little cat\n\xf0\x9f\x98\x80\nthe sun\n"; }
  Cli ok = run_lawcat("generate --model " + teacher + " --prompts " + (root / "ok.txt").string() +
                      " --temperature 50 --top-p 1 --max-new-tokens 40 --seed 3");
  INFO(ok.out);
  CHECK(ok.rc == 0);
  int lines = 0;
  std::istringstream in(ok.out);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    CHECK(j.at("index").get<int>() == lines++);
  }
  CHECK(lines == 3);
  CHECK(ok.out.find("\xef\xbf\xbd") != std::string::npos);  // the case above did occur
  // A folder given as the run config.
  Cli dir = run_lawcat("distill " + root.string());
  CHECK(dir.rc == 1);
  CHECK_THAT(dir.out, LAWCAT_CONTAINS(root.string() + ": is a directory, not a file"));
  // Values out of range are usage errors (exit 2), not silently replaced by defaults.
  Cli zero = run_lawcat("eval --task passkey --models " + teacher + " --max-new-tokens 0");
  CHECK(zero.rc == 2);
  CHECK_THAT(zero.out, LAWCAT_CONTAINS("--max-new-tokens: must be >= 1, got 0"));
  Cli nan = run_lawcat("eval --task passkey --models " + teacher + " --lengths abc");
  CHECK(nan.rc == 2);
  CHECK_THAT(nan.out, LAWCAT_CONTAINS("--lengths"));
  // JSONL whose documents sit in another field: --text-field names it; the same documents under
  // "text" score the same.
  {
    std::ofstream a(root / "content.jsonl"), b(root / "text.jsonl");
    for (int i = 0; i < 6; ++i) {
      const std::string doc = "the little cat number " + std::to_string(i) + " sat on the mat and looked at the sun.";
      a << nlohmann::json{{"content", doc}}.dump() << "\n";
      b << nlohmann::json{{"text", doc}}.dump() << "\n";
    }
  }
  Cli nofield = run_lawcat("ppl --model " + teacher + " --text " + (root / "content.jsonl").string());
  CHECK(nofield.rc == 1);
  CHECK_THAT(nofield.out, LAWCAT_CONTAINS("content.jsonl:1: no field 'text' (choose the field with data.text_field in a run "
                                          "config, --text-field in ppl and eval)"));
  auto nll_line = [](const std::string& out) { return out.substr(out.find("mean NLL")); };
  Cli field = run_lawcat("ppl --model " + teacher + " --text " + (root / "content.jsonl").string() + " --text-field content");
  Cli text = run_lawcat("ppl --model " + teacher + " --text " + (root / "text.jsonl").string());
  REQUIRE(field.rc == 0);
  REQUIRE(text.rc == 0);
  CHECK(nll_line(field.out).substr(0, 40) == nll_line(text.out).substr(0, 40));
  Cli ev = run_lawcat("eval --task ppl --models " + teacher + " --text " + (root / "content.jsonl").string() +
                      " --text-field content --lengths 16 --no-plot --no-progress --out " + (root / "ev_field").string());
  INFO(ev.out);
  CHECK(ev.rc == 0);
}
