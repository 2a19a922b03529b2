#include "train/loop.h"

#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <exception>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>

#include "train/checkpoint.h"
#include "train/resume_state.h"
#include "util/error.h"
#include "util/format.h"
#include "util/fs.h"
#include "util/plot.h"
#include "util/log.h"
#include "util/progress.h"

namespace lawcat::train {
namespace stdfs = std::filesystem;

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double num_of(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? std::numeric_limits<double>::quiet_NaN() : it->get<double>();
}

std::string fmt(double v, int prec = 4) { return format::significant(v, prec); }
std::string human(double v) { return format::human_count(v, 1); }

// Appends one JSON line and flushes (a crash loses at most the line being written).
class MetricsFile {
 public:
  explicit MetricsFile(const stdfs::path& p) : path_(p) {}
  // A failed write (a full disk) is an error, not a silently missing line: the
  // curve must stay complete (the caller's checkpoints are still intact).
  void append(const nlohmann::json& j) {
    if (!out_.is_open()) out_.open(path_, std::ios::app);
    errno = 0;
    out_ << j.dump() << "\n";
    out_.flush();
    if (!out_) {
      const int err = errno;
      out_.close();
      out_.clear();
      throw Error("could not append to " + path_.string() + ": " + (err ? std::strerror(err) : "write failed") +
                  " (disk full?); the checkpoints written so far are intact");
    }
  }
  // Keeps the lines of steps <= step (resume: drop what came after the checkpoint).
  void truncate_after(int64_t step) {
    std::error_code ec;
    if (!stdfs::exists(path_, ec)) return;
    std::ifstream in(path_);
    std::string line, kept;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t(0)) <= step) kept += line + "\n";
      } catch (const std::exception&) {  // a torn last line from a crash
      }
    }
    fs::atomic_write_text(path_, kept);
  }
  void reset() {
    std::error_code ec;
    stdfs::remove(path_, ec);
  }

 private:
  stdfs::path path_;
  std::ofstream out_;
};

// What to do after a non-finite loss: a resume with the same config would
// repeat the same step bit for bit, and lr is part of the run's identity.
std::string nonfinite_hint(const std::string& stage) {
  return "Resuming with the same config repeats this step (the run is deterministic); start again in another "
         "output_dir with a lower " + stage + ".lr or " + stage + ".max_grad_norm > 0";
}

// Runs fn(), turning a JSON error (a wrong type, a missing scheduler field) into
// a CheckpointError naming the file.
template <typename Fn>
auto state_field(const std::string& file, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(file + ": " + e.what());
  }
}

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int sig) {
  if (g_stop.exchange(true)) _exit(128 + sig);  // second signal: leave now
  const char msg[] = "\nlawcat: signal received; saving a checkpoint after this step (again to quit at once)\n";
  ssize_t ignored = ::write(2, msg, sizeof msg - 1);
  (void)ignored;
}
}  // namespace

std::atomic<bool>& stop_flag() { return g_stop; }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

nlohmann::json StageResult::to_json() const {
  return {{"stage", stage},          {"steps", steps},
          {"tokens", tokens},        {"init_val", num_or_null(init_val)},
          {"best_val", num_or_null(best_val)}, {"best_step", best_step},
          {"final_val", num_or_null(final_val)}, {"final_train", num_or_null(final_train)},
          {"final_lr", final_lr},    {"wall_s", wall_s},
          {"tokens_per_s", tokens_per_s}, {"interrupted", interrupted},
          {"best_dir", best_dir.string()}};
}

StageResult StageResult::from_json(const nlohmann::json& j) {
  StageResult r;
  r.stage = j.value("stage", "");
  r.steps = j.value("steps", int64_t(0));
  r.tokens = j.value("tokens", int64_t(0));
  r.init_val = num_of(j, "init_val");
  r.best_val = num_of(j, "best_val");
  r.best_step = j.value("best_step", int64_t(-1));
  r.final_val = num_of(j, "final_val");
  r.final_train = num_of(j, "final_train");
  r.final_lr = j.value("final_lr", 0.0);
  r.wall_s = j.value("wall_s", 0.0);
  r.tokens_per_s = j.value("tokens_per_s", 0.0);
  r.interrupted = j.value("interrupted", false);
  r.best_dir = j.value("best_dir", "");
  return r;
}

double evaluate(const StageSpec& spec, const std::vector<at::Tensor>& batches) {
  at::NoGradGuard no_grad;
  at::Tensor sum;
  for (const auto& b : batches) {
    if (spec.before_forward) spec.before_forward();
    at::Tensor l = spec.loss(b).detach().to(at::kDouble);
    sum = sum.defined() ? sum + l : l;
  }
  return sum.defined() ? sum.item<double>() / static_cast<double>(batches.size())
                       : std::numeric_limits<double>::quiet_NaN();
}

namespace {

// One invocation of one stage: the loop's state and its steps (run_stage below reads
// as the loop). Checkpoints: the newest (checkpoints/step-N, pruned) and best/.
class StageRun {
 public:
  StageRun(const StageSpec& spec, const dataset::DataSplits& data, const LoopOptions& opt)
      : spec_(spec),
        cfg_(spec.cfg),
        opt_(opt),
        rank_(opt.comm ? opt.comm->rank() : 0),
        world_(opt.comm ? opt.comm->world() : 1),
        writer_(rank_ == 0),
        ckroot_(opt.dir / "checkpoints"),
        metrics_(opt.dir / "metrics.jsonl"),
        loader_((writer_ ? stdfs::create_directories(opt.dir) : false, data.train), cfg_.batch_size, opt.seed, rank_,
                world_),
        val_batches_(dataset::validation_batches(data.validation, cfg_.batch_size, cfg_.val_batches)),
        adam_(make_adamw(spec.params, cfg_.lr, cfg_.weight_decay)),
        sched_(cfg_.lr, cfg_.scheduler.factor, cfg_.scheduler.patience, cfg_.scheduler.min_lr) {
    r_.stage = spec.name;
    r_.best_dir = opt.dir / "best";
  }

  StageResult run();

 private:
  TrainState state(int64_t step);
  CheckpointFiles checkpoint_files(int64_t step, bool with_moments);
  void save(int64_t step);
  void save_best(int64_t step);
  std::string last_good() const;
  int64_t start_or_resume();
  void restore(const stdfs::path& ck, const CheckpointFiles& f);
  double train_step(int64_t step);
  void eval_step(int64_t step);

  const StageSpec& spec_;
  const config::StageConfig& cfg_;
  const LoopOptions& opt_;
  const int rank_, world_;
  const bool writer_;
  const stdfs::path ckroot_;
  MetricsFile metrics_;
  dataset::DataLoader loader_;
  const std::vector<at::Tensor> val_batches_;
  std::unique_ptr<torch::optim::AdamW> adam_;
  ReduceLROnPlateau sched_;
  StageResult r_;
  double wall_before_ = 0;
  int64_t tokens_before_ = 0;
  double interval_loss_ = 0;
  int64_t interval_steps_ = 0;
  Clock::time_point t0_;
  std::optional<Progress> progress_;
};

TrainState StageRun::state(int64_t step) {
  TrainState s;
  adamw_state_tensors(*adam_, spec_.params, s.adam_steps);  // steps only (tensors dropped)
  s.stage = spec_.name;
  s.step = step;
  s.tokens = r_.tokens;
  s.wall_s = r_.wall_s;
  s.scheduler = sched_.state();
  s.loader_epoch = loader_.position().epoch;
  s.loader_index = loader_.position().index;
  s.loader_consumed = loader_.position().consumed;
  s.init_val = r_.init_val;
  s.best_val = r_.best_val;
  s.best_step = r_.best_step;
  s.final_val = r_.final_val;
  s.interval_loss = interval_loss_;
  s.interval_steps = interval_steps_;
  s.world = world_;
  return s;
}

CheckpointFiles StageRun::checkpoint_files(int64_t step, bool with_moments) {
  CheckpointFiles f;
  for (const auto& [n, p] : spec_.params) f.trainable.emplace_back(n, p.detach().to(at::kCPU, at::kFloat).contiguous());
  if (with_moments) {
    std::map<std::string, int64_t> steps;
    f.optimizer = adamw_state_tensors(*adam_, spec_.params, steps);
  }
  f.optimizer.emplace_back("rng.cpu", cpu_rng_state());
  f.state = state(step).to_json();
  f.config_yaml = opt_.config_yaml;
  return f;
}

void StageRun::save(int64_t step) {
  if (!writer_) return;
  save_checkpoint_dir(ckroot_ / step_dir_name(step), checkpoint_files(step, true));
  prune_checkpoints(ckroot_, cfg_.keep_last);
}

void StageRun::save_best(int64_t step) {
  if (writer_) save_checkpoint_dir(r_.best_dir, checkpoint_files(step, false));
}

std::string StageRun::last_good() const {
  auto cks = list_checkpoints(ckroot_);
  return cks.empty() ? std::string("none (no checkpoint was saved yet)") : cks.back().string();
}

// The step to start after: 0, or the newest checkpoint that loads (with --resume).
int64_t StageRun::start_or_resume() {
  auto cks = list_checkpoints(ckroot_);
  if (!cks.empty() && !opt_.resume)
    throw ConfigError(opt_.dir.string() + " already holds checkpoints of an earlier run (newest: " +
                      cks.back().filename().string() +
                      "): pass --resume to continue it, or use another output_dir");
  if (!opt_.resume || cks.empty()) {
    if (writer_) metrics_.reset();
    return 0;
  }
  // The newest checkpoint that loads: one cut short (a full disk, a damaged copy) is
  // skipped with a warning naming it, and the previous good one is used. Only when
  // none loads is the newest one's error reported.
  stdfs::path ck;
  CheckpointFiles f;
  std::exception_ptr newest_error;
  for (auto it = cks.rbegin(); it != cks.rend() && ck.empty(); ++it) {
    try {
      f = load_checkpoint_dir(*it);
      ck = *it;
    } catch (const Error& e) {
      log::warn(spec_.name, ": checkpoint ", it->string(), " does not load (", describe_exception(e), ")",
                std::next(it) != cks.rend() ? "; falling back to the one before it" : "");
      if (!newest_error) newest_error = std::current_exception();
    }
  }
  if (ck.empty())
    with_context("while resuming from " + cks.back().string(), [&] { std::rethrow_exception(newest_error); });
  if (ck != cks.back())
    log::warn(spec_.name, ": resuming from ", ck.string(), " instead of the newest checkpoint ", cks.back().string(),
              ", which is damaged");
  restore(ck, f);
  const int64_t start = r_.steps;
  if (writer_) metrics_.truncate_after(start);
  log::info(spec_.name, ": resuming from ", ck.string(), " (step ", start, " of ", cfg_.steps, ")");
  return start;
}

// Weights, Adam moments, RNG, scheduler, loader position and losses from checkpoint `ck`.
void StageRun::restore(const stdfs::path& ck, const CheckpointFiles& f) {
  std::map<std::string, at::Tensor> tr(f.trainable.begin(), f.trainable.end());
  std::string problems;
  for (const auto& [n, p] : spec_.params) {
    auto it = tr.find(n);
    if (it == tr.end()) problems += "\n  missing parameter '" + n + "'";
    else if (it->second.sizes() != p.sizes())
      problems += "\n  parameter '" + n + "': checkpoint shape " + c10::str(it->second.sizes()) + ", model " +
                  c10::str(p.sizes());
  }
  if (tr.size() != spec_.params.size() && problems.empty())
    problems += "\n  the checkpoint has " + std::to_string(tr.size()) + " parameters, the stage trains " +
                std::to_string(spec_.params.size());
  LAWCAT_CHECK(problems.empty(), CheckpointError,
               ck.string() << ": does not match what stage '" << spec_.name << "' trains:" << problems);
  {
    at::NoGradGuard no_grad;
    for (const auto& [n, p] : spec_.params) p.copy_(tr.at(n));
  }
  std::map<std::string, at::Tensor> ot(f.optimizer.begin(), f.optimizer.end());
  const std::string state_file = (ck / "state.json").string();
  const TrainState s = TrainState::from_json(f.state, state_file);  // every key and type checked, naming the file
  LAWCAT_CHECK(s.step <= cfg_.steps, ConfigError,
               spec_.name << ".steps: " << cfg_.steps << " is fewer than the " << s.step << " steps already done ("
                          << ck.string() << "); resume with " << spec_.name << ".steps >= " << s.step
                          << ", or start a new run in another output_dir");
  load_adamw_state(*adam_, spec_.params, ot, s.adam_steps, ck.string());
  if (ot.count("rng.cpu")) set_cpu_rng_state(ot.at("rng.cpu"));
  LAWCAT_CHECK(s.world == world_, ConfigError,
               ck.string() << ": saved by a run of " << s.world << " processes; this one has " << world_
                           << " (the data order would differ)");
  r_.steps = s.step;
  r_.tokens = tokens_before_ = s.tokens;
  r_.wall_s = wall_before_ = s.wall_s;
  state_field(state_file, [&] {
    sched_.load_state(s.scheduler);
    return 0;
  });
  dataset::LoaderPosition pos;
  pos.epoch = s.loader_epoch;
  pos.index = s.loader_index;
  pos.consumed = s.loader_consumed;
  loader_.set_position(pos);
  r_.init_val = s.init_val;
  r_.best_val = s.best_val;
  r_.best_step = s.best_step;
  r_.final_val = s.final_val;
  interval_loss_ = s.interval_loss;
  interval_steps_ = s.interval_steps;
}

// One optimizer step: grad_accum micro-batches, (all-reduce), the non-finite check,
// clipping, warmup, AdamW, the metrics line. Returns the step's mean loss.
double StageRun::train_step(int64_t step) {
  for (auto& [n, p] : spec_.params) p.mutable_grad() = at::Tensor();
  at::Tensor loss_acc;
  for (int64_t m = 0; m < cfg_.grad_accum; ++m) {
    if (spec_.before_forward) spec_.before_forward();
    at::Tensor batch = loader_.next();
    at::Tensor loss = spec_.loss(batch);
    (loss / static_cast<double>(cfg_.grad_accum)).backward();
    at::Tensor l = loss.detach().to(at::kDouble);
    loss_acc = loss_acc.defined() ? loss_acc + l : l;
  }
  if (world_ > 1) {
    std::vector<at::Tensor> grads;
    for (auto& [n, p] : spec_.params) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    at::Tensor l = loss_acc.to(at::kFloat).reshape({1}).to(spec_.params.front().second.device());
    grads.push_back(l);
    opt_.comm->all_reduce_mean(grads);
    loss_acc = grads.back().to(at::kDouble).squeeze();
  }
  const double loss = loss_acc.item<double>() / static_cast<double>(cfg_.grad_accum);
  const double gnorm = grad_norm(spec_.params);
  if (!std::isfinite(loss) || !std::isfinite(gnorm)) {
    if (writer_)
      metrics_.append({{"step", step}, {"loss", num_or_null(loss)}, {"grad_norm", num_or_null(gnorm)}, {"nonfinite", true}});
    if (progress_) progress_->finish();
    throw Error("stage '" + spec_.name + "': " + (std::isfinite(loss) ? "gradient norm" : "loss") + " is " +
                (std::isnan(std::isfinite(loss) ? gnorm : loss) ? "NaN" : "infinite") + " at step " +
                std::to_string(step) + "; stopped without updating the weights. Last good checkpoint: " +
                last_good() + ". " + nonfinite_hint(spec_.name));
  }
  if (cfg_.max_grad_norm > 0 && gnorm > cfg_.max_grad_norm) {
    at::NoGradGuard no_grad;
    const double scale = cfg_.max_grad_norm / (gnorm + 1e-6);
    for (auto& [n, p] : spec_.params)
      if (p.grad().defined()) p.mutable_grad().mul_(scale);
  }
  double lr = sched_.lr();
  if (cfg_.warmup_steps > 0 && step < cfg_.warmup_steps) lr *= static_cast<double>(step) / cfg_.warmup_steps;
  set_lr(*adam_, lr);
  adam_->step();
  r_.steps = step;
  r_.tokens += cfg_.grad_accum * cfg_.batch_size * world_ * opt_.tokens_per_example;
  interval_loss_ += loss;
  ++interval_steps_;
  const double run_s = seconds_since(t0_);
  r_.wall_s = wall_before_ + run_s;
  r_.tokens_per_s = run_s > 0 ? static_cast<double>(r_.tokens - tokens_before_) / run_s : 0.0;
  if (writer_)
    metrics_.append({{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens", r_.tokens},
                     {"tokens_per_s", r_.tokens_per_s}, {"elapsed_s", r_.wall_s}});
  if (progress_) {
    progress_->set_status("loss " + fmt(loss) + "  lr " + fmt(lr, 3) + "  " + human(r_.tokens_per_s) + " tok/s");
    progress_->advance();
  }
  return loss;
}

// Validation: the scheduler, best/ when it improves, the metrics and log lines.
void StageRun::eval_step(int64_t step) {
  const double v = evaluate(spec_, val_batches_);
  r_.final_val = v;
  r_.final_train = interval_loss_ / std::max<int64_t>(interval_steps_, 1);
  interval_loss_ = 0;
  interval_steps_ = 0;
  LAWCAT_CHECK(std::isfinite(v), Error,
               "stage '" << spec_.name << "': validation loss is not finite at step " << step
                         << "; stopped. Last good checkpoint: " << last_good() << ". " << nonfinite_hint(spec_.name));
  const double before = sched_.lr();
  if (sched_.step(v)) log::info(spec_.name, ": validation loss plateaued; lr ", fmt(before, 3), " -> ", fmt(sched_.lr(), 3));
  const bool improved = !(v >= r_.best_val);
  if (improved) {
    r_.best_val = v;
    r_.best_step = step;
    save_best(step);
  }
  if (writer_) metrics_.append({{"step", step}, {"val_loss", v}, {"lr", sched_.lr()}});
  log::info(spec_.name, " step ", step, "/", cfg_.steps, ": train ", fmt(r_.final_train), ", val ", fmt(v),
            improved ? " (best)" : "", ", lr ", fmt(sched_.lr(), 3), ", ", human(r_.tokens_per_s), " tok/s");
}

StageResult StageRun::run() {
  const int64_t start = start_or_resume();
  set_lr(*adam_, sched_.lr());
  r_.start_step = start;
  r_.steps = start;
  t0_ = Clock::now();
  if (start == 0) {
    r_.init_val = evaluate(spec_, val_batches_);
    r_.final_val = r_.init_val;
    r_.best_val = r_.init_val;
    r_.best_step = 0;
    log::info(spec_.name, ": validation ", spec_.loss_label, " at init ", fmt(r_.init_val), " (", val_batches_.size(),
              " batches)");
    if (writer_) metrics_.append({{"step", 0}, {"val_loss", num_or_null(r_.init_val)}, {"lr", sched_.lr()}});
    save_best(0);
  }
  if (opt_.progress && writer_ && cfg_.steps > start) progress_.emplace(spec_.name, cfg_.steps - start, "steps");
  int64_t last_saved = start;
  for (int64_t step = start + 1; step <= cfg_.steps; ++step) {
    if (g_stop.load()) {
      r_.interrupted = true;
      break;
    }
    train_step(step);
    const bool eval_now = step % cfg_.eval_every == 0 || step == cfg_.steps;
    if (eval_now) eval_step(step);
    const bool save_now = (cfg_.save_every > 0 ? step % cfg_.save_every == 0 : eval_now) || step == cfg_.steps;
    if (save_now) {
      save(step);
      last_saved = step;
    }
    if (opt_.after_step) opt_.after_step(step);
    if (g_stop.load()) {
      r_.interrupted = true;
      break;
    }
  }
  if (progress_) progress_->finish();
  if (r_.interrupted && r_.steps != last_saved) save(r_.steps);
  if (r_.interrupted)
    log::warn(spec_.name, ": interrupted after step ", r_.steps, "; checkpoint saved in ", ckroot_.string(),
              ". Continue with --resume");
  r_.final_lr = sched_.lr();
  if (opt_.comm) opt_.comm->barrier();
  return r_;
}

}  // namespace

StageResult run_stage(const StageSpec& spec, const dataset::DataSplits& data, const LoopOptions& opt) {
  return StageRun(spec, data, opt).run();
}

stdfs::path plot_loss_curve(const stdfs::path& dir, const std::string& title, const std::string& loss_label) {
  const stdfs::path metrics = dir / "metrics.jsonl";
  std::error_code ec;
  if (!stdfs::exists(metrics, ec)) return {};
  if (!plot::have_gnuplot()) {
    log::warn("gnuplot not found: skipping the loss-curve plot (install gnuplot-nox)");
    return {};
  }
  std::ifstream in(metrics);
  std::string line, train, val;
  while (std::getline(in, line)) {
    try {
      auto j = nlohmann::json::parse(line);
      const int64_t step = j.value("step", int64_t(0));
      if (j.contains("loss") && j["loss"].is_number()) train += std::to_string(step) + " " + fmt(j["loss"].get<double>(), 9) + "\n";
      if (j.contains("val_loss") && j["val_loss"].is_number())
        val += std::to_string(step) + " " + fmt(j["val_loss"].get<double>(), 9) + "\n";
    } catch (const std::exception&) {
    }
  }
  if (train.empty() && val.empty()) return {};
  fs::atomic_write_text(dir / "train_loss.dat", train);
  fs::atomic_write_text(dir / "val_loss.dat", val);
  const stdfs::path png = dir / "loss.png";
  std::ostringstream gp;
  gp << "# generated by lawcat: " << title << "\n"
     << "set terminal pngcairo size 900,540 enhanced font ',10'\n"
     << "set output " << plot::file(png) << "\n"
     << "set title '" << title << "' noenhanced\n"
     << "set xlabel 'optimizer step'\nset ylabel '" << loss_label << "' noenhanced\n"
     << "set logscale y\nset grid\nset key top right\n"
     << "plot ";
  bool first = true;
  if (!train.empty()) {
    gp << plot::file(dir / "train_loss.dat") << " using 1:2 with lines lw 1 lc rgb '#7f9fcf' title 'train'";
    first = false;
  }
  if (!val.empty())
    gp << (first ? "" : ", ") << plot::file(dir / "val_loss.dat")
       << " using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#d0413e' title 'validation'";
  gp << "\n";
  fs::atomic_write_text(dir / "loss.gp", gp.str());
  return plot::run(dir / "loss.gp", png) ? png : stdfs::path();
}

}  // namespace lawcat::train
