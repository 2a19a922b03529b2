#include "train/recipe.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <iomanip>
#include <optional>
#include <regex>
#include <sstream>
#include <tuple>

#include "config/yaml.h"
#include "dataset/bpe_trainer.h"
#include "dataset/packing.h"
#include "dataset/tokenized.h"
#include "io/llama2c_checkpoint.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/swap.h"
#include "model/export.h"
#include "model/llama.h"
#include "model/lora.h"
#include "model/model_tokenizer.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/distill.h"
#include "train/distributed.h"
#include "train/finetune.h"
#include "train/teacher.h"
#include "model/precision.h"
#include "util/error.h"
#include "util/format.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::train {
namespace stdfs = std::filesystem;

namespace {

using format::duration;
using format::fixed;
std::string human(double v) { return format::human_count(v); }
std::string num(double v) { return std::isfinite(v) ? format::fixed(v, v < 10 ? 4 : 2) : std::string("n/a"); }

bool writer(const RecipeOptions& o) { return !o.comm || o.comm->rank() == 0; }
void barrier(const RecipeOptions& o) {
  if (o.comm) o.comm->barrier();
}

// Loads a stage's best/ weights into the named parameters.
void load_best(const stdfs::path& best, const NamedTensors& params) {
  LAWCAT_CHECK(stdfs::exists(best / "trainable.safetensors"), CheckpointError,
               best.string() << ": no best checkpoint (trainable.safetensors)");
  io::SafetensorsFile f(best / "trainable.safetensors");
  at::NoGradGuard no_grad;
  for (const auto& [n, p] : params) {
    LAWCAT_CHECK(f.contains(n), CheckpointError, best.string() << ": best checkpoint lacks '" << n << "'");
    LAWCAT_CHECK(f.info(n).shape == p.sizes().vec(), CheckpointError,
                 best.string() << ": tensor '" << n << "' has shape " << c10::str(f.info(n).shape) << ", expected "
                               << p.sizes());
    p.copy_(f.load(n, p.device(), p.scalar_type()));
  }
}

struct Data {
  dataset::DataSplits splits;
  int64_t train_tokens = 0, val_tokens = 0;
};

// The training data of a stage: `stage_files` (the stage's own `data` key, named by `key`) or,
// when empty, data.train.
Data load_data(const config::RunConfig& c, const stdfs::path& tokenizer_dir, const stdfs::path& cache_dir,
               const std::vector<std::string>& stage_files = {}, const std::string& key = "data.train") {
  const std::vector<std::string>& files = stage_files.empty() ? c.data.train : stage_files;
  const std::string what = stage_files.empty() ? std::string("data.train") : key;
  return with_context(c.data.validation.empty() ? "while preparing the data (" + what + ")"
                                                 : "while preparing the data (" + what + ", data.validation)",
                      [&] {
    std::error_code ec;
    auto tok = stdfs::exists(tokenizer_dir / "config.json", ec) ? model::load_model_tokenizer(tokenizer_dir)
                                                                 : text::load_tokenizer(tokenizer_dir);
    dataset::TokenizeOptions o;
    o.corpus.format = c.data.format;
    o.corpus.text_field = c.data.text_field;
    o.corpus.separator = c.data.separator;
    o.add_bos = c.data.add_bos;
    o.add_eos = c.data.add_eos;
    o.max_tokens = c.data.max_tokens;
    o.cache_dir = c.data.cache_dir.empty() ? cache_dir : stdfs::path(c.data.cache_dir);
    const std::string fingerprint = dataset::tokenizer_fingerprint(tokenizer_dir);
    dataset::TokenizedCorpus train = dataset::tokenize_corpus(files, *tok, fingerprint, o);
    std::optional<dataset::TokenizedCorpus> val;
    if (!c.data.validation.empty()) {
      dataset::TokenizeOptions vo = o;
      vo.max_tokens = 0;
      val = dataset::tokenize_corpus(c.data.validation, *tok, fingerprint, vo);
    }
    Data d;
    d.splits = dataset::make_splits(train, val ? &*val : nullptr, c.data.seq_len, c.data.val_fraction,
                                    static_cast<uint64_t>(c.data.shuffle_seed));
    d.train_tokens = d.splits.train.stream_tokens();
    d.val_tokens = d.splits.validation.stream_tokens();
    log::info("data: ", d.splits.train.size(), " training examples (", d.train_tokens, " tokens, ", d.splits.train_docs,
              " documents), ", d.splits.validation.size(), " validation examples (", d.val_tokens, " tokens, ",
              d.splits.validation_docs, " documents) of ", c.data.seq_len, " tokens");
    return d;
  });
}

// "7.8M training tokens (7626 sequences of 1024), 79.6K held-out validation tokens (77 sequences)"
std::string data_note(const Data& d, int64_t seq_len) {
  return human(static_cast<double>(d.train_tokens)) + " training tokens (" + std::to_string(d.splits.train.size()) +
         " sequences of " + std::to_string(seq_len) + "), " + human(static_cast<double>(d.val_tokens)) +
         " held-out validation tokens (" + std::to_string(d.splits.validation.size()) + " sequences)";
}

void write_done(const stdfs::path& dir, const StageResult& r, const nlohmann::json& extra = {}) {
  nlohmann::json j = r.to_json();
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  fs::atomic_write_text(dir / "done.json", j.dump(2) + "\n");
}

std::optional<nlohmann::json> read_done(const stdfs::path& dir) {
  std::error_code ec;
  if (!stdfs::exists(dir / "done.json", ec)) return std::nullopt;
  return nlohmann::json::parse(fs::read_text(dir / "done.json"));
}

}  // namespace

bool harmless_config_key(const std::string& key) {
  static const std::regex ok(
      "^((pretrain|distill|lora)\\.(steps|keep_last|save_every|enabled)|threads|device|export_dir|export_dtype)$");
  return std::regex_match(key, ok);
}

std::string RecipeResult::summary() const {
  std::ostringstream os;
  os << "\n== lawcat run summary: " << output_dir.string() << " (" << device << ") ==\n";
  if (!teacher_note.empty()) os << "teacher: " << teacher_note << "\n";
  if (!data_note.empty()) os << "data:    " << data_note << "\n";
  os << "\n";
  os << std::left << std::setw(10) << "stage" << std::setw(8) << "steps" << std::setw(9) << "tokens"
     << std::setw(9) << "tok/s" << std::setw(9) << "wall" << "validation loss: init -> best (step), final\n";
  for (const auto& r : stages) {
    os << std::left << std::setw(10) << r.stage << std::setw(8) << r.steps << std::setw(9) << human(r.tokens)
       << std::setw(9) << human(r.tokens_per_s) << std::setw(9) << duration(r.wall_s) << num(r.init_val) << " -> "
       << num(r.best_val) << " (@" << r.best_step << "), " << num(r.final_val);
    // Interrupted before its first evaluation (a stage that ends normally evaluates at its last
    // step): the numbers above are the initial ones, not a result.
    if (r.interrupted && r.steps > 0 && r.best_step == 0 && r.final_val == r.init_val) {
      os << "   (not evaluated after step 0: interrupted at step " << r.steps << " before its first evaluation)"
         << "   [interrupted]\n";
      continue;
    }
    if (r.stage == "distill" && r.best_val > 0)
      os << "   MSE " << fixed(r.init_val / r.best_val, 1) << "x lower than at init";
    if ((r.stage == "lora" || r.stage == "pretrain") && std::isfinite(r.best_val))
      os << "   ppl " << fixed(std::exp(r.best_val), 3);
    if (r.stage == "lora" && std::isfinite(teacher_val_ce) && std::isfinite(r.best_val))
      os << " vs teacher " << fixed(std::exp(teacher_val_ce), 3) << " ("
         << (r.best_val >= teacher_val_ce ? "+" : "") << fixed(100.0 * (std::exp(r.best_val - teacher_val_ce) - 1), 1) << "%)";
    if (r.interrupted) os << "   [interrupted]";
    os << "\n";
  }
  for (const auto& r : stages)
    if (r.stage == "distill")
      os << "  distill loss = mean over layers of MSE(LAWCAT, softmax) on pre-W_o outputs x1000\n";
  if (!export_dir.empty()) {
    os << "\nexport: " << export_dir.string() << "\n"
       << "  lawcat generate --model " << export_dir.string() << " --prompt \"Once upon a time\"\n"
       << "  lawcat ppl --model " << export_dir.string() << " --text <held-out text file>\n";
  }
  std::vector<std::string> plots;
  for (const auto& r : stages) {
    stdfs::path p = output_dir / r.stage / "loss.png";
    std::error_code ec;
    if (stdfs::exists(p, ec)) plots.push_back(p.string());
  }
  if (!plots.empty()) {
    os << "loss curves:";
    for (const auto& p : plots) os << " " << p;
    os << "\n";
  }
  if (interrupted) os << "\nINTERRUPTED: a checkpoint was saved; continue with --resume\n";
  return os.str();
}

std::string resume_config_conflicts(const stdfs::path& out, const config::RunConfig& saved,
                                    const config::RunConfig& now, const std::string& new_run_hint) {
  std::vector<std::string> bad;
  for (const auto& d : config::config_differences(saved, now))
    if (!harmless_config_key(d.substr(0, d.find(':')))) bad.push_back(d);
  if (bad.empty()) return "";
  std::string msg = "cannot resume " + out.string() + " with a different config (saved -> now):";
  for (const auto& b : bad) msg += "\n  " + b;
  return msg + "\nOnly steps, keep_last, save_every, enabled, threads, device, export_dir and export_dtype may change. " +
         new_run_hint;
}

std::string fewer_steps_error(const std::string& stage, int64_t asked, int64_t did, const std::string& where) {
  if (asked >= did) return "";
  return stage + ".steps: " + std::to_string(asked) + " is fewer than the " + std::to_string(did) +
         " steps this run has already done (" + where + "); resume with " + stage + ".steps >= " +
         std::to_string(did) + ", or start a new run in another output_dir";
}

std::string finished_steps_ignored(const std::string& stage, int64_t did, int64_t asked) {
  return stage + ": finished earlier after " + std::to_string(did) + " steps; " + stage + ".steps=" +
         std::to_string(asked) + " is ignored (finished stages are skipped: train longer in another output_dir)";
}

namespace {

// What the stages of one run_recipe call share.
struct Run {
  Run(const config::RunConfig& config, const RecipeOptions& options)
      : c(config), opt(options), out(config.output_dir), w(writer(options)) {
    R.output_dir = out;
  }
  bool want(const std::string& stage) const { return opt.stage == "all" || opt.stage == stage; }

  const config::RunConfig& c;
  const RecipeOptions& opt;
  const stdfs::path out;
  const bool w;  // this process writes the files (rank 0)
  RecipeResult R;
  LoopOptions lo;
  at::Device device = at::kCPU;
  stdfs::path teacher_dir;
};

// The resolved config is the run's identity: a resume refuses a different one,
// except for the harmless keys.
void check_saved_config(const Run& run) {
  const stdfs::path file = run.out / "config.yaml";
  std::error_code ec;
  if (!stdfs::exists(file, ec)) return;
  // A run that failed before any stage began (a missing or empty corpus, a bad path) left
  // only what its start writes: config.yaml, run.log, the lock, and the converted teacher and
  // token cache (both keyed by the hash of their sources). Nothing derived from its config is
  // there to lose or to reuse by mistake, so it starts again in place, with this config. Any
  // stage folder, export or summary keeps the guard below.
  bool failed_start = true;
  for (const auto& e : stdfs::directory_iterator(run.out, ec)) {
    const std::string name = e.path().filename().string();
    failed_start = failed_start && (name == "config.yaml" || name == "run.log" || name == ".lock" ||
                                    name == "teacher" || name == "cache");
  }
  if (failed_start && !ec) {
    log::warn(run.out.string(), " holds a run that failed before its first stage began: starting it again with this config");
    return;
  }
  LAWCAT_CHECK(run.opt.resume, ConfigError,
               run.out.string() << " already holds a run (config.yaml): pass --resume to continue it (finished "
                                   "stages are skipped), or choose another output_dir");
  const config::RunConfig saved = config::parse_run_config(fs::read_text(file), file.string());
  const std::string conflicts = resume_config_conflicts(run.out, saved, run.c, "Use another output_dir for a new run.");
  if (!conflicts.empty()) throw ConfigError(conflicts);
}

// What will run: resume never goes backwards (a stage's steps below what it has done),
// and a finished run keeps its config.yaml. Writes config.yaml when a stage will run.
void plan_stages(const Run& run, const std::string& yaml) {
  const auto& c = run.c;
  const std::tuple<const char*, const config::StageConfig*, bool> planned[] = {
      {"pretrain", &c.pretrain, c.pretrain.enabled},
      {"distill", &c.distill, c.attention.kind == "lawcat" && c.distill.enabled},
      {"lora", &c.lora, c.lora.enabled}};
  bool any_stage_runs = false;
  for (const auto& [name, sc, enabled] : planned) {
    if (!enabled) continue;
    const stdfs::path sdir = run.out / name;
    const std::optional<nlohmann::json> done = run.opt.resume ? read_done(sdir) : std::nullopt;
    if (run.opt.resume) {
      int64_t did = 0;
      std::string where;
      if (done) {
        did = done->value("steps", int64_t(0));
        where = (sdir / "done.json").string();
      } else if (const auto cks = list_checkpoints(sdir / "checkpoints"); !cks.empty()) {
        did = std::stoll(cks.back().filename().string().substr(5));  // "step-00000120"
        where = cks.back().string();
      }
      if (const std::string fewer = fewer_steps_error(name, sc->steps, did, where); !fewer.empty())
        throw ConfigError(fewer);
    }
    if (!run.want(name)) continue;
    if (!done) {
      any_stage_runs = true;
    } else if (done->value("steps", int64_t(0)) != sc->steps) {
      log::warn(finished_steps_ignored(name, done->value("steps", int64_t(0)), sc->steps));
    }
  }
  std::error_code ec;
  if (!stdfs::exists(run.out / "config.yaml", ec) || any_stage_runs) {
    if (run.w) fs::atomic_write_text(run.out / "config.yaml", yaml);
  } else {
    log::info("every selected stage finished earlier: nothing to train; ", (run.out / "config.yaml").string(),
              " is left as it was");
  }
}

// Device, threads, TF32, the seed, and the loop options every stage shares.
void setup_device(Run& run, const std::string& yaml) {
  const auto& c = run.c;
  at::Device device = c.device == "auto" ? (at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU))
                                         : model::parse_device(c.device);
  if (run.opt.comm && device.is_cuda() && !device.has_index()) {
    device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank_from_env(run.opt.comm->rank())));
  }
  if (c.threads > 0) at::set_num_threads(static_cast<int>(c.threads));
  model::use_tf32_on_cuda(device);
  run.device = device;
  run.R.device = device.str() + (device.is_cpu() ? ", " + std::to_string(at::get_num_threads()) + " threads" : "");
  at::manual_seed(static_cast<uint64_t>(c.seed));
  run.lo.resume = run.opt.resume;
  run.lo.config_yaml = yaml;
  run.lo.seed = static_cast<uint64_t>(c.seed) * 1000003ULL + static_cast<uint64_t>(c.data.shuffle_seed);
  run.lo.tokens_per_example = c.data.seq_len;
  run.lo.comm = run.opt.comm;
  run.lo.progress = run.opt.progress;
}

// summary.md and summary.json (writer), then the result.
RecipeResult finish(const Run& run) {
  const RecipeResult& r = run.R;
  if (run.w) {
    const std::string s = r.summary();
    fs::atomic_write_text(run.out / "summary.md", "```\n" + s + "```\n");
    nlohmann::json j = {{"output_dir", run.out.string()}, {"export_dir", r.export_dir.string()},
                        {"teacher_dir", r.teacher_dir.string()}, {"interrupted", r.interrupted},
                        {"teacher_val_ce", std::isfinite(r.teacher_val_ce) ? nlohmann::json(r.teacher_val_ce) : nlohmann::json(nullptr)},
                        {"stages", nlohmann::json::array()}};
    for (const auto& st : r.stages) j["stages"].push_back(st.to_json());
    fs::atomic_write_text(run.out / "summary.json", j.dump(2) + "\n");
  }
  return r;
}

// What a stage trains and on which data.
struct StagePlan {
  StageSpec spec;
  const dataset::DataSplits* splits = nullptr;
};

// One stage in <out>/<name>, the same way for every stage. Finished earlier (done.json)
// with --resume: its recorded result, and its best weights loaded into `done_params`
// when given (else it is skipped). Otherwise `setup()` gives the spec and the data, the
// loop runs it (from its newest checkpoint with --resume), its best weights are loaded,
// and the writer calls `after(r)`, writes done.json (plus `extra`) and the loss curve.
// Returns false when the stage was interrupted (recorded in run.R).
bool run_or_resume(Run& run, const std::string& name, const std::function<StagePlan()>& setup,
                   const NamedTensors* done_params, const std::function<void(const StageResult&)>& after = {},
                   const nlohmann::json& extra = {}) {
  const stdfs::path dir = run.out / name;
  if (auto done = read_done(dir); done && run.opt.resume) {
    if (done_params) {
      log::info(name, ": finished earlier; loading its best checkpoint");
      load_best(dir / "best", *done_params);
    } else {
      log::info(name, ": finished earlier (", (dir / "done.json").string(), "); skipping");
    }
    run.R.stages.push_back(StageResult::from_json(*done));
    return true;
  }
  const StagePlan plan = setup();
  run.lo.dir = dir;
  if (run.opt.after_step) run.lo.after_step = [&opt = run.opt, name](int64_t s) { opt.after_step(name, s); };
  StageResult r = run_stage(plan.spec, *plan.splits, run.lo);
  run.R.stages.push_back(r);
  if (r.interrupted) {
    run.R.interrupted = true;
    return false;
  }
  load_best(r.best_dir, plan.spec.params);
  if (run.w) {
    if (after) after(r);
    write_done(dir, r, extra);
    plot_loss_curve(dir, r.stage + " (" + run.out.string() + ")", plan.spec.loss_label);
  }
  return true;
}

// The pretrain stage (full training): makes or fine-tunes the teacher in <out>/teacher.
// Without it, a teacher must be there already. False when interrupted.
bool pretrain(Run& run) {
  const auto& c = run.c;
  if (!(c.pretrain.enabled && run.want("pretrain"))) {
    if (run.teacher_dir.empty()) {
      run.teacher_dir = run.out / "teacher";
      LAWCAT_CHECK(stdfs::exists(run.teacher_dir / "config.json"), ConfigError,
                   "no teacher: " << run.teacher_dir.string()
                                  << " does not exist yet (run the pretrain stage first: --stage pretrain or all)");
      run.R.teacher_note = "pretrained earlier: " + run.teacher_dir.string();
    }
    return true;
  }
  Data data;
  stdfs::path tok_dir;
  model::LlamaForCausalLM net{nullptr};
  auto setup = [&] {
    tok_dir = pretrain_tokenizer(c, run.teacher_dir, run.out / "pretrain" / "init", run.w);
    if (run.teacher_dir.empty()) barrier(run.opt);
    data = load_data(c, tok_dir, run.out / "cache", c.pretrain.data, "pretrain.data");
    at::manual_seed(static_cast<uint64_t>(c.seed) * 16 + 1);  // per-stage seeds: a fresh start is
                                                               // reproducible whatever ran before
    net = pretrain_network(c, run.teacher_dir, tok_dir, run.device, run.out, run.R.teacher_note);
    return StagePlan{make_pretrain_stage(*net, c.pretrain), &data.splits};
  };
  auto save_teacher = [&](const StageResult&) {
    std::error_code ec;
    fs::remove_tree(run.out / "teacher", ec);
    model::save_llama(*net, run.out / "teacher");
    model::copy_tokenizer_files(tok_dir, run.out / "teacher");
  };
  bool ran = false;
  const bool finished = run_or_resume(run, "pretrain", [&] { ran = true; return setup(); }, nullptr, save_teacher);
  if (!finished) return false;
  if (ran) barrier(run.opt);
  run.teacher_dir = run.out / "teacher";
  return true;
}

// The teacher loaded as the student: its attention swapped to LAWCAT (attention.kind lawcat).
model::LlamaForCausalLM load_student(const Run& run, at::ScalarType frozen_dtype) {
  model::LlamaForCausalLM net = with_context("while loading the teacher " + run.teacher_dir.string(), [&] {
    return model::load_llama(run.teacher_dir, run.device, frozen_dtype);
  });
  at::manual_seed(static_cast<uint64_t>(run.c.seed) * 16 + 2);  // LAWCAT init
  if (run.c.attention.kind == "lawcat") {
    auto swapped = model::swap_to_lawcat(*net, run.c.attention);
    log::info("swapped ", swapped.size(), " of ", net->num_layers(), " layers to LAWCAT attention (",
              model::lawcat_parameters(*net).size(), " parameter tensors)");
  }
  return net;
}

// Stage 1, attention transfer (LAWCAT parameters only). With --stage lora, the
// distill stage's best checkpoint is loaded instead. False when interrupted.
bool distill(Run& run, model::LlamaForCausalLMImpl& net, const Data& data) {
  if (run.c.attention.kind != "lawcat") {
    log::info("attention.kind is softmax: no swap, no distillation");
    return true;
  }
  if (!run.c.distill.enabled) return true;
  const stdfs::path ddir = run.out / "distill";
  const NamedTensors params = model::lawcat_parameters(net);
  if (!run.want("distill")) {
    LAWCAT_CHECK(stdfs::exists(ddir / "best" / "trainable.safetensors"), ConfigError,
                 "--stage " << run.opt.stage << " needs the distill stage's best checkpoint "
                            << (ddir / "best").string() << "; run --stage distill first");
    load_best(ddir / "best", params);
    if (auto done = read_done(ddir)) run.R.stages.push_back(StageResult::from_json(*done));
  } else if (!run_or_resume(run, "distill", [&] { return StagePlan{make_distill_stage(net, run.c.distill), &data.splits}; },
                            &params)) {
    return false;
  }
  model::set_mixer_mode(net, model::MixerMode::kStudent);
  return true;
}

// The teacher's cross-entropy on the LoRA validation batches (the baseline of the
// summary), measured once into <out>/lora/teacher_val.json.
void teacher_baseline(Run& run, model::LlamaForCausalLMImpl& net, const Data& data) {
  const stdfs::path ldir = run.out / "lora";
  const auto val = dataset::validation_batches(data.splits.validation, run.c.lora.batch_size, run.c.lora.val_batches);
  if (run.w && !stdfs::exists(ldir / "teacher_val.json")) {
    model::set_mixer_mode(net, model::MixerMode::kTeacher);
    StageSpec probe;
    probe.loss = [&](const at::Tensor& b) { return next_token_loss(net, b); };
    const double ce = evaluate(probe, val);
    model::set_mixer_mode(net, model::MixerMode::kStudent);
    stdfs::create_directories(ldir);
    fs::atomic_write_text(ldir / "teacher_val.json", nlohmann::json{{"teacher_val_ce", ce}}.dump() + "\n");
  }
  if (stdfs::exists(ldir / "teacher_val.json"))
    run.R.teacher_val_ce =
        nlohmann::json::parse(fs::read_text(ldir / "teacher_val.json")).at("teacher_val_ce").get<double>();
}

// Stage 2, LoRA on q/k/v/o (cross-entropy). `lora` holds the adapters for the export.
// False when interrupted.
bool finetune(Run& run, model::LlamaForCausalLMImpl& net, const Data& data,
              std::shared_ptr<model::LoraAdapters>& lora) {
  if (!run.c.lora.enabled) return true;
  teacher_baseline(run, net, data);
  at::manual_seed(static_cast<uint64_t>(run.c.seed) * 16 + 3);  // LoRA init
  const StageSpec spec = make_lora_stage(net, run.c.lora, lora);
  if (!run_or_resume(run, "lora", [&] { return StagePlan{spec, &data.splits}; }, &spec.params, {},
                     {{"teacher_val_ce", run.R.teacher_val_ce}}))
    return false;
  lora->restore();
  return true;
}

// The merged model, in the teacher's dtype unless export_dtype says otherwise (writer).
void export_student(Run& run, model::LlamaForCausalLMImpl& net, const model::LoraAdapters* lora,
                    const io::LlamaConfig& tcfg) {
  if (!run.w) return;
  model::set_mixer_mode(net, model::MixerMode::kStudent);
  model::ExportOptions eo;
  const std::string& d = run.c.export_dtype;
  eo.dtype = d == "auto" ? model::parse_dtype(tcfg.torch_dtype == "bfloat16" || tcfg.torch_dtype == "float16"
                                                  ? tcfg.torch_dtype
                                                  : "float32")
                         : model::parse_dtype(d);
  eo.tokenizer_dir = run.teacher_dir;
  run.R.export_dir = run.c.export_dir.empty() ? run.out / "export" : stdfs::path(run.c.export_dir);
  model::export_model(net, lora, run.R.export_dir, eo);
}

}  // namespace

RecipeResult run_recipe(const config::RunConfig& c, const RecipeOptions& opt) {
  const std::vector<std::string> stages_known = {"all", "pretrain", "distill", "lora"};
  LAWCAT_CHECK(std::find(stages_known.begin(), stages_known.end(), opt.stage) != stages_known.end(), ConfigError,
               "--stage: '" << opt.stage << "' is not one of pretrain, distill, lora, all");
  Run run(c, opt);
  // A teacher file the config names must be there (a typo never trains something else).
  config::check_teacher_exists(c);
  // One process per output_dir: the lock is held until this function returns, and
  // the kernel drops it if the process dies (kill -9 leaves no stale lock).
  std::optional<fs::DirLock> lock;
  if (run.w) lock.emplace(run.out);
  barrier(opt);
  if (run.w) log::add_file_sink(run.out / "run.log");

  // ---- the run's identity, what will run, where ----
  const std::string yaml = config::to_yaml(c);
  check_saved_config(run);
  plan_stages(run, yaml);
  setup_device(run, yaml);

  // ---- teacher: found, converted, or pretrained ----
  run.teacher_dir = find_teacher(c, run.out, run.w, [&] { barrier(opt); }, run.R.teacher_note);
  if (!pretrain(run)) return finish(run);
  run.R.teacher_dir = run.teacher_dir;
  if (opt.stage == "pretrain") return finish(run);

  // ---- student: the teacher swapped to LAWCAT, distilled, LoRA-fine-tuned, exported ----
  // data.train, loaded once for the stages without their own `data`; a stage that does not run
  // reads nothing
  const Data none;
  std::optional<Data> shared, distill_own, lora_own;
  auto stage_data = [&](const config::StageConfig& s, bool runs, const char* key,
                        std::optional<Data>& own) -> const Data& {
    if (!runs) return none;
    if (!s.data.empty()) return *(own = load_data(c, run.teacher_dir, run.out / "cache", s.data, key));
    if (!shared) shared = load_data(c, run.teacher_dir, run.out / "cache");
    return *shared;
  };
  const Data& distill_data =
      stage_data(c.distill, c.attention.kind == "lawcat" && c.distill.enabled, "distill.data", distill_own);
  const Data& lora_data = stage_data(c.lora, c.lora.enabled, "lora.data", lora_own);
  auto add_note = [&](const std::string& line) {
    run.R.data_note += (run.R.data_note.empty() ? "" : "\n         ") + line;  // aligned under "data:    "
  };
  if (shared) add_note(data_note(*shared, c.data.seq_len));
  if (distill_own) add_note("distill.data: " + data_note(*distill_own, c.data.seq_len));
  if (lora_own) add_note("lora.data: " + data_note(*lora_own, c.data.seq_len));
  const io::LlamaConfig tcfg = io::load_llama_config(run.teacher_dir / "config.json");
  model::LlamaForCausalLM net = load_student(run, model::resolve_dtype(c.model.dtype, run.device, tcfg));
  // lora.* checked against the model now, not after stage 1 has run
  if (c.lora.enabled && opt.stage != "distill") model::check_lora_options(*net, lora_options_from_config(c.lora));
  if (!distill(run, *net, distill_data)) return finish(run);
  if (opt.stage == "distill") return finish(run);
  std::shared_ptr<model::LoraAdapters> lora;
  if (!finetune(run, *net, lora_data, lora)) return finish(run);
  export_student(run, *net, lora.get(), tcfg);
  barrier(opt);
  return finish(run);
}

}  // namespace lawcat::train
