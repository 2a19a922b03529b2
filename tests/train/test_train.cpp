// train: scheduler, distillation on a tiny random model, exact resume, NaN stop,
// checkpoint atomicity under a full disk, LoRA merge, export round trip, recipe config checks.
#include <csignal>
#include <signal.h>
#include <sys/resource.h>

#include <ATen/Parallel.h>

#include <fstream>
#include <regex>

#include "common/catch.h"
#include "model/checkpoint.h"
#include "train/train_helpers.h"
#include "config/yaml.h"
#include "dataset/bpe_trainer.h"
#include "dataset/packing.h"
#include "io/safetensors.h"
#include "model/swap.h"
#include "model/export.h"
#include "model/llama.h"
#include "model/lora.h"
#include "train/checkpoint.h"
#include "train/distill.h"
#include "train/finetune.h"
#include "train/loop.h"
#include "train/optim.h"
#include "train/recipe.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;
namespace stdfs = std::filesystem;

namespace {
// A tiny random teacher, identical for the same seed.
model::LlamaForCausalLM tiny_teacher(uint64_t seed = 11) {
  at::manual_seed(seed);
  auto m = model::build_llama(test::tiny_train_config());
  train::init_from_scratch(*m, 0.2);
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  return m;
}

dataset::DataSplits tiny_data(int64_t seq_len = 16, uint64_t seed = 3) {
  dataset::TokenizedCorpus c;
  c.files = {"synthetic"};
  c.doc_offsets = {0};
  at::manual_seed(seed);
  for (int d = 0; d < 24; ++d) {
    at::Tensor t = at::randint(3, 64, {40}, at::kLong);
    c.tokens.push_back(1);
    for (int64_t i = 0; i < 40; ++i) c.tokens.push_back(static_cast<int32_t>(t[i].item<int64_t>()));
    c.doc_offsets.push_back(c.num_tokens());
  }
  return dataset::make_splits(c, nullptr, seq_len, 0.2, seed);
}

config::StageConfig small_stage(int64_t steps) {
  config::StageConfig s;
  s.steps = steps;
  s.batch_size = 2;
  s.grad_accum = 2;
  s.lr = 1e-2;
  s.eval_every = 2;
  s.val_batches = 2;
  s.keep_last = 2;
  return s;
}

// The stage-1 run the resume tests interrupt: the tiny teacher swapped to LAWCAT (gate
// rank 4, LAWCAT init seeded by init_seed), 8 steps; net receives the model it trains.
train::StageSpec tiny_distill_stage(model::LlamaForCausalLM& net, uint64_t init_seed = 99) {
  config::AttentionConfig a;
  a.gate_rank = 4;
  net = tiny_teacher();
  at::manual_seed(init_seed);
  model::swap_to_lawcat(*net, a);
  return train::make_distill_stage(*net, small_stage(8));
}

train::LoopOptions resume_loop_options() {
  train::LoopOptions lo;
  lo.tokens_per_example = 16;
  lo.progress = false;
  lo.seed = 5;
  return lo;
}

struct Curve {
  std::vector<std::pair<int64_t, double>> train, val;
  bool operator==(const Curve& o) const { return train == o.train && val == o.val; }
};
Curve read_curve(const stdfs::path& metrics) {
  Curve c;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) c.train.emplace_back(j["step"].get<int64_t>(), j["loss"].get<double>());
    if (j.contains("val_loss")) c.val.emplace_back(j["step"].get<int64_t>(), j["val_loss"].get<double>());
  }
  return c;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return describe_exception(e);
  }
  return "";
}

// Tiny models: one intra-op thread is faster (and immune to a busy machine's spin waits).
struct OneThread {
  OneThread() { at::set_num_threads(1); }
};

struct Killed : std::runtime_error {
  Killed() : std::runtime_error("simulated kill") {}
};
}  // namespace

TEST_CASE("ReduceLROnPlateau follows PyTorch (min mode, rel threshold, patience)", "[train]") {
  OneThread one_thread;
  train::ReduceLROnPlateau s(1e-2, 0.1, 2, 1e-4);
  CHECK_FALSE(s.step(1.0));
  CHECK_FALSE(s.step(0.9));      // better
  CHECK_FALSE(s.step(0.89995));  // not better by 1e-4 relative: bad 1
  CHECK_FALSE(s.step(0.95));     // bad 2
  CHECK(s.step(0.95));           // bad 3 > patience: reduce
  CHECK(s.lr() == Approx(1e-3));
  CHECK(s.num_bad() == 0);
  for (int i = 0; i < 3; ++i) s.step(1.0);
  CHECK(s.lr() == Approx(1e-4));
  for (int i = 0; i < 6; ++i) CHECK_FALSE(s.step(1.0));  // floored at min_lr
  CHECK(s.lr() == Approx(1e-4));
  train::ReduceLROnPlateau t(1.0, 0.5, 1, 0.0);
  t.load_state(s.state());
  CHECK(t.lr() == s.lr());
  CHECK(t.best() == s.best());
}

TEST_CASE("stage 1 on a tiny random model lowers the attention MSE", "[train]") {
  OneThread one_thread;
  auto net = tiny_teacher();
  config::AttentionConfig a;
  a.gate_rank = 4;
  model::swap_to_lawcat(*net, a);
  auto data = tiny_data();
  config::StageConfig sc = small_stage(30);
  sc.lr = 0.05;
  auto spec = train::make_distill_stage(*net, sc);
  // Only LAWCAT parameters train; the teacher's weights do not move.
  const at::Tensor wq = net->layer(0)->self_attn->named_parameters()["q_proj.weight"].clone();
  train::LoopOptions lo;
  lo.dir = test::scratch_dir("distill_tiny");
  lo.tokens_per_example = 16;
  lo.progress = false;
  auto r = train::run_stage(spec, data, lo);
  CHECK(r.steps == 30);
  CHECK(r.tokens == 30 * 2 * 2 * 16);
  CHECK(r.best_val < 0.8 * r.init_val);
  CHECK(at::equal(net->layer(0)->self_attn->named_parameters()["q_proj.weight"], wq));
  CHECK(stdfs::exists(lo.dir / "best" / "trainable.safetensors"));
  CHECK(train::list_checkpoints(lo.dir / "checkpoints").size() == 2);  // keep_last
}

TEST_CASE("resume after an interruption reproduces the uninterrupted loss curve exactly", "[train]") {
  OneThread one_thread;
  const int64_t kill_at = GENERATE(3, 6);
  const bool by_signal = GENERATE(false, true);
  CAPTURE(kill_at, by_signal);
  auto data = tiny_data();
  train::LoopOptions lo = resume_loop_options();

  model::LlamaForCausalLM n1{nullptr};
  auto s1 = tiny_distill_stage(n1);
  lo.dir = test::scratch_dir("resume_full");
  train::run_stage(s1, data, lo);
  const Curve full = read_curve(lo.dir / "metrics.jsonl");
  REQUIRE(full.train.size() == 8);

  // Interrupted run: a crash (exception) or SIGINT after step kill_at.
  model::LlamaForCausalLM n2{nullptr};
  auto s2 = tiny_distill_stage(n2);
  lo.dir = test::scratch_dir("resume_cut");
  train::LoopOptions cut = lo;
  cut.after_step = [&](int64_t step) {
    if (step != kill_at) return;
    if (by_signal) ::raise(SIGINT);
    else throw Killed();
  };
  train::install_signal_handlers();
  if (by_signal) {
    auto r = train::run_stage(s2, data, cut);
    CHECK(r.interrupted);
    CHECK(r.steps == kill_at);
    train::stop_flag() = false;
  } else {
    CHECK_THROWS_AS(train::run_stage(s2, data, cut), Killed);
  }
  // Without --resume the stage refuses to overwrite.
  CHECK_THAT(error_of([&] { train::run_stage(s2, data, lo); }), LAWCAT_CONTAINS("pass --resume"));

  // A fresh process: rebuild the model (different LAWCAT init on purpose) and resume.
  model::LlamaForCausalLM n3{nullptr};
  auto s3 = tiny_distill_stage(n3, 777);
  train::LoopOptions again = lo;
  again.resume = true;
  auto r3 = train::run_stage(s3, data, again);
  CHECK(r3.steps == 8);
  const Curve resumed = read_curve(lo.dir / "metrics.jsonl");
  CHECK(resumed.train == full.train);  // bitwise: doubles compared with ==
  CHECK(resumed.val == full.val);
  for (auto& [n, p] : s1.params) CHECK(at::equal(p, std::find_if(s3.params.begin(), s3.params.end(), [&](auto& q) {
                                                     return q.first == n;
                                                   })->second));
}

TEST_CASE("a NaN loss stops, names the step, keeps the last good checkpoint", "[train]") {
  OneThread one_thread;
  auto data = tiny_data();
  at::Tensor w = at::zeros({4}, at::kFloat).set_requires_grad(true);
  train::StageSpec spec;
  spec.name = "toy";
  spec.cfg = small_stage(10);
  spec.cfg.eval_every = 2;
  spec.params = {{"w", w}};
  bool poison = false;
  spec.loss = [&](const at::Tensor& b) {
    at::Tensor l = (w - b.narrow(1, 0, 4).to(at::kFloat) / 64).pow(2).mean();
    return poison && at::GradMode::is_enabled() ? l * std::numeric_limits<float>::quiet_NaN() : l;
  };
  train::LoopOptions lo;
  lo.dir = test::scratch_dir("nan");
  lo.progress = false;
  lo.tokens_per_example = 16;
  lo.after_step = [&](int64_t step) { poison = step == 4; };
  std::string e = error_of([&] { train::run_stage(spec, data, lo); });
  CHECK_THAT(e, LAWCAT_CONTAINS("stage 'toy': loss is NaN at step 5"));
  CHECK_THAT(e, LAWCAT_CONTAINS("step-00000004"));
  auto cks = train::list_checkpoints(lo.dir / "checkpoints");
  REQUIRE(cks.size() == 2);
  CHECK(cks.back().filename() == "step-00000004");
  auto f = train::load_checkpoint_dir(cks.back());
  CHECK(f.state["step"] == 4);
  CHECK(at::isfinite(f.trainable[0].second).all().item<bool>());
  CHECK(at::isfinite(w).all().item<bool>());  // the poisoned step did not update the weights
}

TEST_CASE("a full disk while saving leaves the previous checkpoint intact", "[train]") {
  OneThread one_thread;
  auto root = test::scratch_dir("diskfull") / "checkpoints";
  train::CheckpointFiles small;
  small.trainable = {{"w", at::ones({4})}};
  small.optimizer = {{"rng.cpu", train::cpu_rng_state()}};
  small.state = {{"step", 1}};
  small.config_yaml = "a: 1\n";
  train::save_checkpoint_dir(root / train::step_dir_name(1), small);
  train::CheckpointFiles big = small;
  big.trainable = {{"w", at::ones({1 << 20})}};  // 4 MiB
  big.state = {{"step", 2}};
  // RLIMIT_FSIZE makes writes past 64 KiB fail with EFBIG, as a full disk fails them with ENOSPC.
  struct rlimit old {};
  getrlimit(RLIMIT_FSIZE, &old);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 64 << 10;
  setrlimit(RLIMIT_FSIZE, &lim);
  std::string e = error_of([&] { train::save_checkpoint_dir(root / train::step_dir_name(2), big); });
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK_THAT(e, LAWCAT_CONTAINS("could not save checkpoint"));
  CHECK_THAT(e, LAWCAT_CONTAINS("previous checkpoints are intact"));
  auto cks = train::list_checkpoints(root);
  REQUIRE(cks.size() == 1);
  auto f = train::load_checkpoint_dir(cks[0]);
  CHECK(f.state["step"] == 1);
  int entries = 0;
  for (auto& d : stdfs::directory_iterator(root)) entries += d.path().filename().string().rfind(".tmp", 0) == 0;
  CHECK(entries == 0);
}

TEST_CASE("a full disk during training stops with a clear error; resume after freeing space gives the same curve",
          "[train]") {
  OneThread one_thread;
  auto data = tiny_data();
  train::LoopOptions lo = resume_loop_options();
  model::LlamaForCausalLM n1{nullptr};
  auto s1 = tiny_distill_stage(n1);
  lo.dir = test::scratch_dir("diskfull_run_full");
  train::run_stage(s1, data, lo);
  const Curve full = read_curve(lo.dir / "metrics.jsonl");

  // After step 3 the "disk" holds only a few more bytes of metrics.jsonl (RLIMIT_FSIZE:
  // writes past it fail with EFBIG as a full disk fails them with ENOSPC; the line is torn).
  model::LlamaForCausalLM n2{nullptr};
  auto s2 = tiny_distill_stage(n2);
  lo.dir = test::scratch_dir("diskfull_run_cut");
  struct rlimit old {};
  getrlimit(RLIMIT_FSIZE, &old);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  train::LoopOptions cut = lo;
  cut.after_step = [&](int64_t step) {
    if (step != 3) return;
    struct rlimit lim = old;
    lim.rlim_cur = stdfs::file_size(lo.dir / "metrics.jsonl") + 10;
    setrlimit(RLIMIT_FSIZE, &lim);
  };
  std::string e = error_of([&] { train::run_stage(s2, data, cut); });
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK_THAT(e, LAWCAT_CONTAINS("could not append to " + (lo.dir / "metrics.jsonl").string()));
  CHECK_THAT(e, LAWCAT_CONTAINS("intact"));
  auto cks = train::list_checkpoints(lo.dir / "checkpoints");
  REQUIRE_FALSE(cks.empty());
  CHECK(cks.back().filename() == "step-00000002");
  CHECK(train::load_checkpoint_dir(cks.back()).state["step"] == 2);

  // Space is back: a fresh process resumes and produces the uninterrupted curve.
  model::LlamaForCausalLM n3{nullptr};
  auto s3 = tiny_distill_stage(n3);
  train::LoopOptions again = lo;
  again.resume = true;
  CHECK(train::run_stage(s3, data, again).steps == 8);
  const Curve resumed = read_curve(lo.dir / "metrics.jsonl");
  CHECK(resumed.train == full.train);
  CHECK(resumed.val == full.val);
}

TEST_CASE("LoRA: refreshed weights equal the unmerged form; export reloads with identical logits", "[train]") {
  OneThread one_thread;
  auto net = tiny_teacher();
  config::AttentionConfig a;
  a.gate_rank = 4;
  model::swap_to_lawcat(*net, a);
  {  // trained-looking LAWCAT parameters
    at::NoGradGuard ng;
    for (auto& [n, p] : model::lawcat_parameters(*net)) p.add_(at::randn_like(p) * 0.05);
  }
  std::shared_ptr<model::LoraAdapters> lora;
  auto spec = train::make_lora_stage(*net, small_stage(1), lora);
  CHECK(spec.params.size() == 2 * 4 * 2);  // A, B x q/k/v/o x 2 layers
  CHECK(spec.params[0].first == "model.layers.0.self_attn.q_proj.lora_A.weight");
  {
    at::NoGradGuard ng;
    for (auto& [n, p] : lora->parameters()) p.normal_(0, 0.1);
  }
  // Unmerged LoRA on one projection: x W^T + s (x A^T) B^T.
  lora->refresh();
  const auto& ad = lora->adapters()[0];
  at::Tensor x = at::randn({3, 32});
  at::Tensor unmerged = at::linear(x, ad.frozen) +
                        lora->options().scale() * at::linear(at::linear(x, ad.A->weight), ad.B->weight);
  CHECK(at::allclose(ad.base->forward(x), unmerged, 1e-5, 1e-6));
  at::Tensor ids = at::randint(0, 64, {2, 20}, at::kLong);
  at::Tensor logits;
  {
    at::NoGradGuard ng;
    logits = net->forward(ids);
    lora->restore();
    CHECK_FALSE(at::allclose(net->forward(ids), logits, 1e-4, 1e-5));  // the adapters matter
  }
  auto dir = test::scratch_dir("export") / "export";
  model::ExportOptions eo;
  model::export_model(*net, lora.get(), dir, eo);
  io::SafetensorsFile f(dir / "model.safetensors");
  for (auto& [n, info] : f.tensors()) CHECK(n.find("lora_") == std::string::npos);
  auto back = model::load_model(dir);
  at::NoGradGuard ng;
  CHECK(model::lawcat_layers(*back).size() == 2);
  CHECK(at::allclose(back->forward(ids), logits, 1e-5, 1e-5));
  // MLP targets and unknown targets.
  {
    auto other = tiny_teacher();
    model::LoraOptions mo;
    mo.targets = {"q_proj", "gate_proj", "down_proj"};
    auto ml = model::apply_lora(*other, mo);
    CHECK(ml->parameters().size() == 2 * 3 * 2);
    CHECK(ml->parameters()[2].first == "model.layers.0.mlp.gate_proj.lora_A.weight");
    auto again = tiny_teacher();
    mo.targets = {"q_proj", "qkv_proj"};
    CHECK_THAT(error_of([&] { model::apply_lora(*again, mo); }), LAWCAT_CONTAINS("no projection named qkv_proj"));
    // lora_layers: only layer 1's projections get adapters; a layer the model lacks is named.
    auto one = tiny_teacher();
    mo.targets = {"q_proj", "k_proj"};
    mo.layers = {1};
    auto l1 = model::apply_lora(*one, mo);
    REQUIRE(l1->parameters().size() == 2 * 2);
    for (const auto& [n, p] : l1->parameters()) CHECK(n.rfind("model.layers.1.self_attn.", 0) == 0);
    auto bad = tiny_teacher();
    mo.layers = {2};
    CHECK_THAT(error_of([&] { model::apply_lora(*bad, mo); }),
               LAWCAT_CONTAINS("lora.lora_layers: layer 2 is not in the model (decoder layers 0..1)"));
  }
  // Re-export over an existing directory replaces it.
  model::export_model(*net, nullptr, dir, eo);
  auto plain = model::load_model(dir);
  CHECK(at::allclose(plain->forward(ids), net->forward(ids), 1e-5, 1e-5));
}

namespace {
// A tiny teacher directory under root (tokenizer learned from root/corpus.txt, which it writes) and
// the YAML of a 2 + 2-step recipe run into root/run on it.
std::string tiny_recipe(const stdfs::path& root) {
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
         "distill: {steps: 2, eval_every: 1, val_batches: 1, grad_accum: 1}\n"
         "lora: {steps: 2, eval_every: 1, val_batches: 1, grad_accum: 1}\n";
}
}  // namespace

TEST_CASE("recipe: resume refuses a different config and an occupied output dir", "[train]") {
  OneThread one_thread;
  auto root = test::scratch_dir("recipe");
  const std::string yaml = tiny_recipe(root);
  train::RecipeOptions ro;
  ro.progress = false;
  auto cfg = config::parse_run_config(yaml, "run.yaml");
  auto r = train::run_recipe(cfg, ro);
  REQUIRE(r.stages.size() == 2);
  CHECK(r.stages[0].stage == "distill");
  CHECK(r.stages[1].stage == "lora");
  CHECK(std::isfinite(r.teacher_val_ce));
  CHECK(stdfs::exists(r.export_dir / "model.safetensors"));
  CHECK(stdfs::exists(r.export_dir / "tokenizer.bin"));
  CHECK_THAT(r.summary(), LAWCAT_CONTAINS("MSE"));
  CHECK(model::lawcat_layers(*model::load_model(r.export_dir)).size() == 2);

  CHECK_THAT(error_of([&] { train::run_recipe(cfg, ro); }), LAWCAT_CONTAINS("already holds a run"));
  ro.resume = true;
  auto other = config::parse_run_config(yaml, "run.yaml", {"distill.lr=0.001", "attention.conv_width=2"});
  std::string e = error_of([&] { train::run_recipe(other, ro); });
  CHECK_THAT(e, LAWCAT_CONTAINS("cannot resume"));
  CHECK_THAT(e, LAWCAT_CONTAINS("distill.lr: 0.01 -> 0.001"));
  CHECK_THAT(e, LAWCAT_CONTAINS("attention.conv_width: 4 -> 2"));
  // Harmless changes resume (finished stages are skipped).
  auto more = config::parse_run_config(yaml, "run.yaml", {"lora.keep_last=3"});
  auto r2 = train::run_recipe(more, ro);
  CHECK(r2.stages.size() == 2);
  CHECK(r2.stages[0].best_val == r.stages[0].best_val);
  CHECK(train::harmless_config_key("distill.steps"));

  // Interrupted in stage 2 (SIGINT), resumed: the same stage-2 curve and export as the uninterrupted run.
  const std::string yaml2 = std::regex_replace(yaml, std::regex("/run\n"), "/run2\n");
  auto cfg2 = config::parse_run_config(yaml2, "run.yaml");
  train::RecipeOptions cut;
  cut.progress = false;
  cut.after_step = [](const std::string& stage, int64_t step) {
    if (stage == "lora" && step == 1) ::raise(SIGINT);
  };
  train::install_signal_handlers();
  auto part = train::run_recipe(cfg2, cut);
  train::stop_flag() = false;
  CHECK(part.interrupted);
  CHECK_THAT(part.summary(), LAWCAT_CONTAINS("continue with --resume"));
  train::RecipeOptions cont;
  cont.progress = false;
  cont.resume = true;
  auto rest = train::run_recipe(cfg2, cont);
  CHECK_FALSE(rest.interrupted);
  CHECK(read_curve(root / "run2" / "lora" / "metrics.jsonl") == read_curve(root / "run" / "lora" / "metrics.jsonl"));
  CHECK(read_curve(root / "run2" / "distill" / "metrics.jsonl") == read_curve(root / "run" / "distill" / "metrics.jsonl"));
  io::SafetensorsFile e1(root / "run" / "export" / "model.safetensors"), e2(root / "run2" / "export" / "model.safetensors");
  for (auto& [n, info] : e1.tensors()) CHECK(at::equal(e1.load(n), e2.load(n)));
  CHECK_FALSE(train::harmless_config_key("distill.lr"));
}

TEST_CASE("run summary: a stage stopped before its first evaluation says so, not 'MSE 1.0x lower'", "[train]") {
  train::RecipeResult r;
  train::StageResult st;
  st.stage = "distill";
  st.steps = 9;
  st.init_val = st.best_val = st.final_val = 55.84;
  st.best_step = 0;
  st.interrupted = true;
  r.stages.push_back(st);
  CHECK_THAT(r.summary(), LAWCAT_CONTAINS("not evaluated after step 0: interrupted at step 9"));
  CHECK_THAT(r.summary(), !LAWCAT_CONTAINS("x lower than at init"));
  // Finished (evaluated at its last step) with a validation loss that never moved: a result.
  r.stages[0].interrupted = false;
  CHECK_THAT(r.summary(), !LAWCAT_CONTAINS("not evaluated"));
  r.stages[0].interrupted = true;
  // Evaluated later and no better than at init: the numbers are a result.
  r.stages[0].final_val = 56.1;
  CHECK_THAT(r.summary(), LAWCAT_CONTAINS("MSE 1.0x lower than at init"));
}

TEST_CASE("recipe: a run that failed before its first stage began starts again in place", "[train]") {
  OneThread one_thread;
  auto root = test::scratch_dir("recipe_restart");
  const std::string yaml = tiny_recipe(root);
  train::RecipeOptions ro;
  ro.progress = false;
  // A training file that does not exist: the error names it, after config.yaml is written.
  const std::string missing = (root / "nope.txt").string();
  auto bad = config::parse_run_config(yaml, "run.yaml", {"data.train=[" + missing + "]"});
  CHECK_THAT(error_of([&] { train::run_recipe(bad, ro); }), LAWCAT_CONTAINS(missing));
  REQUIRE(stdfs::exists(root / "run" / "config.yaml"));
  // A stage that began (its folder: best weights can be there before any checkpoint) keeps the guard.
  auto good = config::parse_run_config(yaml, "run.yaml");
  stdfs::create_directories(root / "run" / "distill" / "best");
  CHECK_THAT(error_of([&] { train::run_recipe(good, ro); }), LAWCAT_CONTAINS("already holds a run"));
  stdfs::remove_all(root / "run" / "distill");
  // Fixed, the same command runs in the same output_dir (nothing was saved to lose) ...
  auto r = train::run_recipe(good, ro);
  CHECK(r.stages.size() == 2);
  CHECK(stdfs::exists(r.export_dir / "model.safetensors"));
  // ... and once a stage has saved, the guard is back.
  CHECK_THAT(error_of([&] { train::run_recipe(bad, ro); }), LAWCAT_CONTAINS("already holds a run"));
  // A run with no stage (export only) wrote an export and a summary: not restarted either.
  const std::string yaml3 = std::regex_replace(yaml, std::regex("/run\n"), "/run3\n");
  auto export_only = config::parse_run_config(yaml3, "run.yaml", {"distill.enabled=false", "lora.enabled=false"});
  train::run_recipe(export_only, ro);
  auto changed = config::parse_run_config(yaml3, "run.yaml", {"distill.enabled=false", "lora.enabled=false",
                                                              "attention.gate_rank=8"});
  CHECK_THAT(error_of([&] { train::run_recipe(changed, ro); }), LAWCAT_CONTAINS("already holds a run"));
}

TEST_CASE("recipe: a stage's own data (lora.data) replaces data.train for that stage only", "[train]") {
  OneThread one_thread;
  auto root = test::scratch_dir("recipe_stage_data");
  const std::string yaml = tiny_recipe(root);
  std::string other;
  for (int i = 0; i < 200; ++i) other += "a dog " + std::to_string(i * 7) + " ran to the sun.\n\n";
  { std::ofstream(root / "other.txt") << other; }
  train::RecipeOptions ro;
  ro.progress = false;
  const auto plain = train::run_recipe(config::parse_run_config(yaml, "run.yaml"), ro);
  const std::string own_yaml = std::regex_replace(yaml, std::regex("/run\n"), "/run_own\n");
  const auto own = train::run_recipe(
      config::parse_run_config(own_yaml, "run.yaml", {"lora.data=[" + (root / "other.txt").string() + "]"}), ro);
  REQUIRE(own.stages.size() == 2);
  // stage 1 read data.train as before: the same curve; stage 2 and its teacher baseline another text
  CHECK(read_curve(root / "run_own" / "distill" / "metrics.jsonl") == read_curve(root / "run" / "distill" / "metrics.jsonl"));
  CHECK(own.teacher_val_ce != plain.teacher_val_ce);
  CHECK_FALSE(read_curve(root / "run_own" / "lora" / "metrics.jsonl") == read_curve(root / "run" / "lora" / "metrics.jsonl"));
  CHECK_THAT(own.summary(), LAWCAT_CONTAINS("lora.data: "));
  CHECK_THAT(plain.summary(), !LAWCAT_CONTAINS("lora.data"));
  // a stage's missing file is named with its key; data.train may be empty when every stage has its own
  const std::string bad_yaml = std::regex_replace(yaml, std::regex("/run\n"), "/run_bad\n");
  const std::string e = error_of([&] {
    train::run_recipe(config::parse_run_config(bad_yaml, "run.yaml", {"lora.data=[" + (root / "absent.txt").string() + "]"}), ro);
  });
  CHECK_THAT(e, LAWCAT_CONTAINS("lora.data"));
  CHECK_THAT(e, LAWCAT_CONTAINS("absent.txt"));
  CHECK_NOTHROW(config::parse_run_config(bad_yaml, "run.yaml",
                                         {"data.train=[]", "distill.data=[x.txt]", "lora.data=[y.txt]"}));
  CHECK_THAT(error_of([&] { config::parse_run_config(bad_yaml, "run.yaml", {"data.train=[]", "lora.data=[y.txt]"}); }),
             LAWCAT_CONTAINS("data.train: no training data"));
  // lora.* keys the model cannot take are reported before stage 1 runs (nothing distilled in vain)
  for (const std::string& key : {std::string("lora.lora_layers=[9]"), std::string("lora.lora_targets=[qkv_proj]")}) {
    CAPTURE(key);
    const std::string early_yaml = std::regex_replace(yaml, std::regex("/run\n"), "/run_early\n");
    stdfs::remove_all(root / "run_early");
    const std::string err = error_of([&] { train::run_recipe(config::parse_run_config(early_yaml, "run.yaml", {key}), ro); });
    CHECK_THAT(err, LAWCAT_CONTAINS(key.substr(0, key.find('='))));
    CHECK_FALSE(stdfs::exists(root / "run_early" / "distill" / "metrics.jsonl"));
  }
}
