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

Data load_data(const config::RunConfig& c, const stdfs::path& tokenizer_dir, const stdfs::path& cache_dir) {
  return with_context(c.data.validation.empty() ? "while preparing the data (data.train)"
                                                 : "while preparing the data (data.train, data.validation)",
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
    const std::string key = dataset::tokenizer_fingerprint(tokenizer_dir);
    dataset::TokenizedCorpus train = dataset::tokenize_corpus(c.data.train, *tok, key, o);
    std::optional<dataset::TokenizedCorpus> val;
    if (!c.data.validation.empty()) {
      dataset::TokenizeOptions vo = o;
      vo.max_tokens = 0;
      val = dataset::tokenize_corpus(c.data.validation, *tok, key, vo);
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

// A llama2.c checkpoint converted into <out>/teacher once (keyed by the files' hashes).
stdfs::path convert_llama2c_teacher(const config::ModelConfig& m, const stdfs::path& out, std::string& note) {
  const stdfs::path dir = out / "teacher";
  uint64_t h = dataset::hash_bytes("llama2c-v1", 10);
  for (const auto& f : {m.llama2c, m.llama2c_tokenizer}) {
    fs::MappedFile mf(f);
    h = dataset::hash_bytes(mf.data(), mf.size(), h);
  }
  const std::string key = dataset::hex64(h);
  std::error_code ec;
  if (stdfs::exists(dir / "source.json", ec)) {
    try {
      auto j = nlohmann::json::parse(fs::read_text(dir / "source.json"));
      if (j.value("hash", "") == key && stdfs::exists(dir / "model.safetensors")) {
        note = "llama2.c " + m.llama2c + " (converted earlier into " + dir.string() + ")";
        return dir;
      }
    } catch (const std::exception&) {
    }
  }
  with_context("while converting the llama2.c teacher " + m.llama2c, [&] {
    io::convert_llama2c(m.llama2c, m.llama2c_tokenizer, dir, [&](const stdfs::path& t, const io::LlamaConfig& lc) {
      model::check_tokenizer_vocab(text::load_llama2c(t)->vocab_size(), t, lc.vocab_size, m.llama2c);
    });
  });
  fs::atomic_write_text(dir / "source.json",
                        nlohmann::json{{"llama2c", m.llama2c}, {"tokenizer", m.llama2c_tokenizer}, {"hash", key}}.dump(2));
  note = "llama2.c " + m.llama2c + " (converted into " + dir.string() + ")";
  log::info("converted ", m.llama2c, " into ", dir.string());
  return dir;
}

io::LlamaConfig scratch_llama_config(const config::ScratchModelConfig& s, int64_t vocab, int64_t seq_len) {
  io::LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = s.hidden_size;
  c.intermediate_size = s.intermediate_size;
  c.num_hidden_layers = s.num_layers;
  c.num_attention_heads = s.num_heads;
  c.num_key_value_heads = s.num_kv_heads;
  c.head_dim = s.hidden_size / s.num_heads;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = s.rope_theta;
  c.tie_word_embeddings = true;
  c.max_position_embeddings = s.max_position > 0 ? s.max_position : seq_len;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.eos_token_ids = {2};
  c.torch_dtype = "float32";
  return c;
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

RecipeResult run_recipe(const config::RunConfig& c, const RecipeOptions& opt) {
  const std::vector<std::string> stages_known = {"all", "pretrain", "distill", "lora"};
  LAWCAT_CHECK(std::find(stages_known.begin(), stages_known.end(), opt.stage) != stages_known.end(), ConfigError,
               "--stage: '" << opt.stage << "' is not one of pretrain, distill, lora, all");
  auto want = [&](const std::string& s) { return opt.stage == "all" || opt.stage == s; };
  const stdfs::path out = c.output_dir;
  RecipeResult R;
  R.output_dir = out;
  const bool w = writer(opt);
  // A teacher file the config names must be there (a typo never trains something else).
  config::check_teacher_exists(c);
  // One process per output_dir: the lock is held until this function returns, and
  // the kernel drops it if the process dies (kill -9 leaves no stale lock).
  std::optional<fs::DirLock> lock;
  if (w) lock.emplace(out);
  barrier(opt);
  if (w) log::add_file_sink(out / "run.log");

  // ---- the run's identity: resolved config -------------------------------------------
  const std::string yaml = config::to_yaml(c);
  std::error_code ec;
  if (stdfs::exists(out / "config.yaml", ec)) {
    LAWCAT_CHECK(opt.resume, ConfigError,
                 out.string() << " already holds a run (config.yaml): pass --resume to continue it (finished stages "
                                 "are skipped), or choose another output_dir");
    config::RunConfig saved = config::parse_run_config(fs::read_text(out / "config.yaml"), (out / "config.yaml").string());
    std::vector<std::string> bad;
    for (const auto& d : config::config_differences(saved, c))
      if (!harmless_config_key(d.substr(0, d.find(':')))) bad.push_back(d);
    if (!bad.empty()) {
      std::string msg = "cannot resume " + out.string() + " with a different config (saved -> now):";
      for (const auto& b : bad) msg += "\n  " + b;
      msg += "\nOnly steps, keep_last, save_every, enabled, threads, device, export_dir and export_dtype may change. "
             "Use another output_dir for a new run.";
      throw ConfigError(msg);
    }
  }
  // ---- what will run: resume never goes backwards, and a finished run keeps its config -------
  const bool lawcat_attention = c.attention.kind == "lawcat";
  const std::tuple<const char*, const config::StageConfig*, bool> planned[] = {
      {"pretrain", &c.pretrain, c.pretrain.enabled},
      {"distill", &c.distill, lawcat_attention && c.distill.enabled},
      {"lora", &c.lora, c.lora.enabled}};
  bool any_stage_runs = false;
  for (const auto& [name, sc, enabled] : planned) {
    if (!enabled) continue;
    const stdfs::path sdir = out / name;
    const std::optional<nlohmann::json> done = opt.resume ? read_done(sdir) : std::nullopt;
    if (opt.resume) {
      int64_t did = 0;
      std::string where;
      if (done) {
        did = done->value("steps", int64_t(0));
        where = (sdir / "done.json").string();
      } else if (const auto cks = list_checkpoints(sdir / "checkpoints"); !cks.empty()) {
        did = std::stoll(cks.back().filename().string().substr(5));  // "step-00000120"
        where = cks.back().string();
      }
      LAWCAT_CHECK(did <= sc->steps, ConfigError,
                   name << ".steps: " << sc->steps << " is fewer than the " << did << " steps this run has already done ("
                        << where << "); resume with " << name << ".steps >= " << did
                        << ", or start a new run in another output_dir");
    }
    if (!want(name)) continue;
    if (!done) {
      any_stage_runs = true;
    } else if (done->value("steps", int64_t(0)) != sc->steps) {
      log::warn(name, ": finished earlier after ", done->value("steps", int64_t(0)), " steps; ", name, ".steps=",
                sc->steps, " is ignored (finished stages are skipped: train longer in another output_dir)");
    }
  }
  if (!stdfs::exists(out / "config.yaml", ec) || any_stage_runs) {
    if (w) fs::atomic_write_text(out / "config.yaml", yaml);
  } else {
    log::info("every selected stage finished earlier: nothing to train; ", (out / "config.yaml").string(),
              " is left as it was");
  }

  // ---- device, threads, seed ----------------------------------------------------------
  at::Device device = c.device == "auto" ? (at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU))
                                         : model::parse_device(c.device);
  if (opt.comm && device.is_cuda() && !device.has_index()) {
    device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank_from_env(opt.comm->rank())));
  }
  if (c.threads > 0) at::set_num_threads(static_cast<int>(c.threads));
  model::use_tf32_on_cuda(device);
  R.device = device.str() + (device.is_cpu() ? ", " + std::to_string(at::get_num_threads()) + " threads" : "");
  at::manual_seed(static_cast<uint64_t>(c.seed));
  const stdfs::path cache_dir = out / "cache";
  LoopOptions lo;
  lo.resume = opt.resume;
  lo.config_yaml = yaml;
  lo.seed = static_cast<uint64_t>(c.seed) * 1000003ULL + static_cast<uint64_t>(c.data.shuffle_seed);
  lo.tokens_per_example = c.data.seq_len;
  lo.comm = opt.comm;
  lo.progress = opt.progress;

  auto finish = [&](RecipeResult& r) -> RecipeResult {
    if (w) {
      const std::string s = r.summary();
      fs::atomic_write_text(out / "summary.md", "```\n" + s + "```\n");
      nlohmann::json j = {{"output_dir", out.string()}, {"export_dir", r.export_dir.string()},
                          {"teacher_dir", r.teacher_dir.string()}, {"interrupted", r.interrupted},
                          {"teacher_val_ce", std::isfinite(r.teacher_val_ce) ? nlohmann::json(r.teacher_val_ce) : nlohmann::json(nullptr)},
                          {"stages", nlohmann::json::array()}};
      for (const auto& st : r.stages) j["stages"].push_back(st.to_json());
      fs::atomic_write_text(out / "summary.json", j.dump(2) + "\n");
    }
    return r;
  };
  auto plot = [&](const StageResult& r, const std::string& label) {
    if (w) plot_loss_curve(out / r.stage, r.stage + " (" + out.string() + ")", label);
  };
  // Runs one stage into dir (the after-step hook named after it) and loads its best checkpoint.
  // Empty when the stage was interrupted: R records it and the caller returns finish(R).
  auto run_one = [&](const std::string& name, const stdfs::path& dir, const StageSpec& spec,
                     const dataset::DataSplits& splits) -> std::optional<StageResult> {
    lo.dir = dir;
    if (opt.after_step) lo.after_step = [&opt, name](int64_t s) { opt.after_step(name, s); };
    StageResult r = run_stage(spec, splits, lo);
    R.stages.push_back(r);
    if (r.interrupted) {
      R.interrupted = true;
      return std::nullopt;
    }
    load_best(r.best_dir, spec.params);
    return r;
  };

  // ---- teacher -------------------------------------------------------------------------------
  const auto& m = c.model;
  stdfs::path teacher_dir;
  if (!m.path.empty()) {
    teacher_dir = m.path;
    R.teacher_note = m.path;
  } else if (!m.llama2c.empty()) {
    if (w) teacher_dir = convert_llama2c_teacher(m, out, R.teacher_note);
    barrier(opt);
    teacher_dir = out / "teacher";
  }

  // ---- pretrain (full training; makes <out>/teacher) -------------------------------------------
  if (c.pretrain.enabled && want("pretrain")) {
    const stdfs::path sdir = out / "pretrain";
    if (auto done = read_done(sdir); done && opt.resume) {
      log::info("pretrain: finished earlier (", (sdir / "done.json").string(), "); skipping");
      R.stages.push_back(StageResult::from_json(*done));
    } else {
      // Tokenizer: the teacher's, the scratch one named in the config, or one learned from the data.
      const stdfs::path init = sdir / "init";
      stdfs::path tok_dir = teacher_dir;
      if (teacher_dir.empty()) {
        tok_dir = init;
        if (w && !stdfs::exists(init / "tokenizer.bin") && !stdfs::exists(init / "tokenizer.json") &&
            !stdfs::exists(init / "tokenizer.model")) {
          if (!m.scratch.tokenizer.empty()) {
            LAWCAT_CHECK(model::copy_tokenizer_files(m.scratch.tokenizer, init) > 0, DataError,
                         "model.scratch.tokenizer: no tokenizer files in " << m.scratch.tokenizer);
          } else {
            dataset::CorpusOptions co;
            co.format = c.data.format;
            co.text_field = c.data.text_field;
            co.separator = c.data.separator;
            std::vector<std::string> docs;
            for (const auto& f : dataset::expand_paths(c.data.train)) {
              auto d = dataset::read_documents(f, co);
              docs.insert(docs.end(), d.begin(), d.end());
            }
            dataset::BpeTrainOptions bo;
            bo.vocab_size = m.scratch.vocab_size;
            stdfs::create_directories(init);
            dataset::train_llama2c_tokenizer(docs, init / "tokenizer.bin", bo);
          }
        }
        barrier(opt);
      }
      Data data = load_data(c, tok_dir, cache_dir);
      model::LlamaForCausalLM net{nullptr};
      at::manual_seed(static_cast<uint64_t>(c.seed) * 16 + 1);  // per-stage seeds: a fresh start is
                                                                 // reproducible whatever ran before
      if (teacher_dir.empty()) {
        auto tok = text::load_tokenizer(tok_dir);
        io::LlamaConfig lc = scratch_llama_config(m.scratch, tok->vocab_size(), c.data.seq_len);
        net = model::build_llama(lc);
        init_from_scratch(*net, m.scratch.init_std);
        net->to(device);
        R.teacher_note = "trained from scratch (" + std::to_string(lc.num_hidden_layers) + " layers, hidden " +
                         std::to_string(lc.hidden_size) + ", vocab " + std::to_string(lc.vocab_size) + ") into " +
                         (out / "teacher").string();
      } else {
        net = model::load_llama(teacher_dir, device, at::kFloat);
        R.teacher_note = "fine-tuned from " + teacher_dir.string() + " into " + (out / "teacher").string();
      }
      StageSpec spec = make_pretrain_stage(*net, c.pretrain);
      const std::optional<StageResult> r = run_one("pretrain", sdir, spec, data.splits);
      if (!r) return finish(R);
      if (w) {
        fs::remove_tree(out / "teacher", ec);
        model::save_llama(*net, out / "teacher");
        model::copy_tokenizer_files(tok_dir, out / "teacher");
        write_done(sdir, *r);
        plot(*r, spec.loss_label);
      }
      barrier(opt);
    }
    teacher_dir = out / "teacher";
  } else if (teacher_dir.empty()) {
    teacher_dir = out / "teacher";
    LAWCAT_CHECK(stdfs::exists(teacher_dir / "config.json"), ConfigError,
                 "no teacher: " << teacher_dir.string() << " does not exist yet (run the pretrain stage first: --stage pretrain or all)");
    R.teacher_note = "pretrained earlier: " + teacher_dir.string();
  }
  R.teacher_dir = teacher_dir;
  if (opt.stage == "pretrain") return finish(R);

  // ---- LAWCAT model ------------------------------------------------------------------------------
  Data data = load_data(c, teacher_dir, cache_dir);
  R.data_note = human(static_cast<double>(data.train_tokens)) + " training tokens (" +
                std::to_string(data.splits.train.size()) + " sequences of " + std::to_string(c.data.seq_len) + "), " +
                human(static_cast<double>(data.val_tokens)) + " held-out validation tokens (" +
                std::to_string(data.splits.validation.size()) + " sequences)";
  const io::LlamaConfig tcfg = io::load_llama_config(teacher_dir / "config.json");
  const at::ScalarType frozen_dtype = model::resolve_dtype(c.model.dtype, device, tcfg);
  model::LlamaForCausalLM net = with_context("while loading the teacher " + teacher_dir.string(),
                                             [&] { return model::load_llama(teacher_dir, device, frozen_dtype); });
  const bool lawcat = c.attention.kind == "lawcat";
  at::manual_seed(static_cast<uint64_t>(c.seed) * 16 + 2);  // LAWCAT init
  if (lawcat) {
    auto swapped = model::swap_to_lawcat(*net, c.attention);
    log::info("swapped ", swapped.size(), " of ", net->num_layers(), " layers to LAWCAT attention (",
              model::lawcat_parameters(*net).size(), " parameter tensors)");
  }

  // ---- stage 1: distill ---------------------------------------------------------------------------------
  const stdfs::path ddir = out / "distill";
  if (lawcat && c.distill.enabled) {
    auto params = model::lawcat_parameters(*net);
    if (!want("distill")) {
      LAWCAT_CHECK(stdfs::exists(ddir / "best" / "trainable.safetensors"), ConfigError,
                   "--stage " << opt.stage << " needs the distill stage's best checkpoint " << (ddir / "best").string()
                              << "; run --stage distill first");
      load_best(ddir / "best", params);
      if (auto done = read_done(ddir)) R.stages.push_back(StageResult::from_json(*done));
    } else if (auto done = read_done(ddir); done && opt.resume) {
      log::info("distill: finished earlier; loading its best checkpoint");
      load_best(ddir / "best", params);
      R.stages.push_back(StageResult::from_json(*done));
    } else {
      StageSpec spec = make_distill_stage(*net, c.distill);
      const std::optional<StageResult> r = run_one("distill", ddir, spec, data.splits);
      if (!r) return finish(R);
      if (w) {
        write_done(ddir, *r);
        plot(*r, spec.loss_label);
      }
    }
    model::set_mixer_mode(*net, model::MixerMode::kStudent);
  } else if (!lawcat) {
    log::info("attention.kind is softmax: no swap, no distillation");
  }
  if (opt.stage == "distill") return finish(R);

  // ---- stage 2: LoRA ------------------------------------------------------------------------------------
  std::shared_ptr<model::LoraAdapters> lora;
  const stdfs::path ldir = out / "lora";
  if (c.lora.enabled) {
    // Baseline: the teacher's cross-entropy on the same validation batches.
    const auto val = dataset::validation_batches(data.splits.validation, c.lora.batch_size, c.lora.val_batches);
    if (w && !stdfs::exists(ldir / "teacher_val.json")) {
      model::set_mixer_mode(*net, model::MixerMode::kTeacher);
      StageSpec probe;
      probe.loss = [&](const at::Tensor& b) { return next_token_loss(*net, b); };
      const double ce = evaluate(probe, val);
      model::set_mixer_mode(*net, model::MixerMode::kStudent);
      stdfs::create_directories(ldir);
      fs::atomic_write_text(ldir / "teacher_val.json", nlohmann::json{{"teacher_val_ce", ce}}.dump() + "\n");
    }
    if (stdfs::exists(ldir / "teacher_val.json"))
      R.teacher_val_ce = nlohmann::json::parse(fs::read_text(ldir / "teacher_val.json")).at("teacher_val_ce").get<double>();
    at::manual_seed(static_cast<uint64_t>(c.seed) * 16 + 3);  // LoRA init
    StageSpec spec = make_lora_stage(*net, c.lora, lora);
    if (auto done = read_done(ldir); done && opt.resume) {
      log::info("lora: finished earlier; loading its best checkpoint");
      load_best(ldir / "best", spec.params);
      R.stages.push_back(StageResult::from_json(*done));
    } else {
      const std::optional<StageResult> r = run_one("lora", ldir, spec, data.splits);
      if (!r) return finish(R);
      if (w) {
        write_done(ldir, *r, {{"teacher_val_ce", R.teacher_val_ce}});
        plot(*r, spec.loss_label);
      }
    }
    lora->restore();
  }

  // ---- export ----------------------------------------------------------------------------------------------
  if (w) {
    model::set_mixer_mode(*net, model::MixerMode::kStudent);
    model::ExportOptions eo;
    eo.dtype = c.export_dtype == "auto" ? model::parse_dtype(tcfg.torch_dtype == "bfloat16" || tcfg.torch_dtype == "float16"
                                                                 ? tcfg.torch_dtype
                                                                 : "float32")
                                        : model::parse_dtype(c.export_dtype);
    eo.tokenizer_dir = teacher_dir;
    R.export_dir = c.export_dir.empty() ? out / "export" : stdfs::path(c.export_dir);
    model::export_model(*net, lora.get(), R.export_dir, eo);
  }
  barrier(opt);
  return finish(R);
}

}  // namespace lawcat::train
