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

StageResult run_stage(const StageSpec& spec, const dataset::DataSplits& data, const LoopOptions& opt) {
  const auto& cfg = spec.cfg;
  const int rank = opt.comm ? opt.comm->rank() : 0;
  const int world = opt.comm ? opt.comm->world() : 1;
  const bool writer = rank == 0;
  const stdfs::path ckroot = opt.dir / "checkpoints";
  MetricsFile metrics(opt.dir / "metrics.jsonl");
  if (writer) stdfs::create_directories(opt.dir);

  dataset::DataLoader loader(data.train, cfg.batch_size, opt.seed, rank, world);
  const auto val_batches = dataset::validation_batches(data.validation, cfg.batch_size, cfg.val_batches);
  auto adam = make_adamw(spec.params, cfg.lr, cfg.weight_decay);
  ReduceLROnPlateau sched(cfg.lr, cfg.scheduler.factor, cfg.scheduler.patience, cfg.scheduler.min_lr);

  StageResult r;
  r.stage = spec.name;
  r.best_dir = opt.dir / "best";
  double wall_before = 0;
  int64_t tokens_before = 0;
  double interval_loss = 0;
  int64_t interval_steps = 0;

  // ---- checkpoint I/O ------------------------------------------------------------
  auto state_json = [&](int64_t step) {
    std::map<std::string, int64_t> adam_steps;
    adamw_state_tensors(*adam, spec.params, adam_steps);  // steps only (tensors dropped)
    return nlohmann::json{{"stage", spec.name},
                          {"step", step},
                          {"tokens", r.tokens},
                          {"wall_s", r.wall_s},
                          {"scheduler", sched.state()},
                          {"loader", {{"epoch", loader.position().epoch},
                                      {"index", loader.position().index},
                                      {"consumed", loader.position().consumed}}},
                          {"init_val", num_or_null(r.init_val)},
                          {"best_val", num_or_null(r.best_val)},
                          {"best_step", r.best_step},
                          {"final_val", num_or_null(r.final_val)},
                          {"interval_loss", interval_loss},
                          {"interval_steps", interval_steps},
                          {"adam_steps", adam_steps},
                          {"world", world}};
  };
  auto trainable_cpu = [&] {
    NamedTensors t;
    for (const auto& [n, p] : spec.params) t.emplace_back(n, p.detach().to(at::kCPU, at::kFloat).contiguous());
    return t;
  };
  auto save = [&](int64_t step) {
    if (!writer) return;
    CheckpointFiles f;
    f.trainable = trainable_cpu();
    std::map<std::string, int64_t> steps;
    f.optimizer = adamw_state_tensors(*adam, spec.params, steps);
    f.optimizer.emplace_back("rng.cpu", cpu_rng_state());
    f.state = state_json(step);
    f.config_yaml = opt.config_yaml;
    save_checkpoint_dir(ckroot / step_dir_name(step), f);
    prune_checkpoints(ckroot, cfg.keep_last);
  };
  auto save_best = [&](int64_t step) {
    if (!writer) return;
    CheckpointFiles f;
    f.trainable = trainable_cpu();
    f.optimizer.emplace_back("rng.cpu", cpu_rng_state());
    f.state = state_json(step);
    f.config_yaml = opt.config_yaml;
    save_checkpoint_dir(r.best_dir, f);
  };
  auto last_good = [&]() -> std::string {
    auto cks = list_checkpoints(ckroot);
    return cks.empty() ? std::string("none (no checkpoint was saved yet)") : cks.back().string();
  };

  // ---- start or resume -----------------------------------------------------------------
  int64_t start = 0;
  auto cks = list_checkpoints(ckroot);
  if (!cks.empty() && !opt.resume)
    throw ConfigError(opt.dir.string() + " already holds checkpoints of an earlier run (newest: " +
                      cks.back().filename().string() +
                      "): pass --resume to continue it, or use another output_dir");
  if (opt.resume && !cks.empty()) {
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
        log::warn(spec.name, ": checkpoint ", it->string(), " does not load (", describe_exception(e), ")",
                  std::next(it) != cks.rend() ? "; falling back to the one before it" : "");
        if (!newest_error) newest_error = std::current_exception();
      }
    }
    if (ck.empty())
      with_context("while resuming from " + cks.back().string(), [&] { std::rethrow_exception(newest_error); });
    if (ck != cks.back())
      log::warn(spec.name, ": resuming from ", ck.string(), " instead of the newest checkpoint ",
                cks.back().string(), ", which is damaged");
    std::map<std::string, at::Tensor> tr(f.trainable.begin(), f.trainable.end());
    std::string problems;
    for (const auto& [n, p] : spec.params) {
      auto it = tr.find(n);
      if (it == tr.end()) problems += "\n  missing parameter '" + n + "'";
      else if (it->second.sizes() != p.sizes())
        problems += "\n  parameter '" + n + "': checkpoint shape " + c10::str(it->second.sizes()) + ", model " +
                    c10::str(p.sizes());
    }
    if (tr.size() != spec.params.size() && problems.empty())
      problems += "\n  the checkpoint has " + std::to_string(tr.size()) + " parameters, the stage trains " +
                  std::to_string(spec.params.size());
    LAWCAT_CHECK(problems.empty(), CheckpointError,
                 ck.string() << ": does not match what stage '" << spec.name << "' trains:" << problems);
    {
      at::NoGradGuard no_grad;
      for (const auto& [n, p] : spec.params) p.copy_(tr.at(n));
    }
    std::map<std::string, at::Tensor> ot(f.optimizer.begin(), f.optimizer.end());
    const std::string state_file = (ck / "state.json").string();
    const ResumeState s = read_resume_state(f.state, state_file);  // every key and type checked, naming the file
    LAWCAT_CHECK(s.step <= cfg.steps, ConfigError,
                 spec.name << ".steps: " << cfg.steps << " is fewer than the " << s.step
                           << " steps already done (" << ck.string() << "); resume with " << spec.name
                           << ".steps >= " << s.step << ", or start a new run in another output_dir");
    load_adamw_state(*adam, spec.params, ot, s.adam_steps, ck.string());
    if (ot.count("rng.cpu")) set_cpu_rng_state(ot.at("rng.cpu"));
    LAWCAT_CHECK(s.world == world, ConfigError,
                 ck.string() << ": saved by a run of " << s.world << " processes; this one has " << world
                             << " (the data order would differ)");
    start = s.step;
    r.tokens = tokens_before = s.tokens;
    r.wall_s = wall_before = s.wall_s;
    state_field(state_file, [&] {
      sched.load_state(s.scheduler);
      return 0;
    });
    dataset::LoaderPosition pos;
    pos.epoch = s.loader_epoch;
    pos.index = s.loader_index;
    pos.consumed = s.loader_consumed;
    loader.set_position(pos);
    r.init_val = s.init_val;
    r.best_val = s.best_val;
    r.best_step = s.best_step;
    r.final_val = s.final_val;
    interval_loss = s.interval_loss;
    interval_steps = s.interval_steps;
    if (writer) metrics.truncate_after(start);
    log::info(spec.name, ": resuming from ", ck.string(), " (step ", start, " of ", cfg.steps, ")");
  } else if (writer) {
    metrics.reset();
  }
  set_lr(*adam, sched.lr());
  r.start_step = start;
  r.steps = start;

  const auto t0 = Clock::now();
  if (start == 0) {
    r.init_val = evaluate(spec, val_batches);
    r.final_val = r.init_val;
    r.best_val = r.init_val;
    r.best_step = 0;
    log::info(spec.name, ": validation ", spec.loss_label, " at init ", fmt(r.init_val), " (", val_batches.size(),
              " batches)");
    if (writer) metrics.append({{"step", 0}, {"val_loss", num_or_null(r.init_val)}, {"lr", sched.lr()}});
    save_best(0);
  }

  // ---- steps ---------------------------------------------------------------------------
  const int64_t tokens_per_step = cfg.grad_accum * cfg.batch_size * world * opt.tokens_per_example;
  std::optional<Progress> progress;
  if (opt.progress && writer && cfg.steps > start) progress.emplace(spec.name, cfg.steps - start, "steps");
  int64_t last_saved = start;
  for (int64_t step = start + 1; step <= cfg.steps; ++step) {
    if (g_stop.load()) {
      r.interrupted = true;
      break;
    }
    for (auto& [n, p] : spec.params) p.mutable_grad() = at::Tensor();
    at::Tensor loss_acc;
    for (int64_t m = 0; m < cfg.grad_accum; ++m) {
      if (spec.before_forward) spec.before_forward();
      at::Tensor batch = loader.next();
      at::Tensor loss = spec.loss(batch);
      (loss / static_cast<double>(cfg.grad_accum)).backward();
      at::Tensor l = loss.detach().to(at::kDouble);
      loss_acc = loss_acc.defined() ? loss_acc + l : l;
    }
    if (world > 1) {
      std::vector<at::Tensor> grads;
      for (auto& [n, p] : spec.params) {
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
        grads.push_back(p.grad());
      }
      at::Tensor l = loss_acc.to(at::kFloat).reshape({1}).to(spec.params.front().second.device());
      grads.push_back(l);
      opt.comm->all_reduce_mean(grads);
      loss_acc = grads.back().to(at::kDouble).squeeze();
    }
    const double loss = loss_acc.item<double>() / static_cast<double>(cfg.grad_accum);
    const double gnorm = grad_norm(spec.params);
    if (!std::isfinite(loss) || !std::isfinite(gnorm)) {
      if (writer)
        metrics.append({{"step", step}, {"loss", num_or_null(loss)}, {"grad_norm", num_or_null(gnorm)}, {"nonfinite", true}});
      if (progress) progress->finish();
      throw Error("stage '" + spec.name + "': " + (std::isfinite(loss) ? "gradient norm" : "loss") + " is " +
                  (std::isnan(std::isfinite(loss) ? gnorm : loss) ? "NaN" : "infinite") + " at step " +
                  std::to_string(step) + "; stopped without updating the weights. Last good checkpoint: " +
                  last_good() + ". " + nonfinite_hint(spec.name));
    }
    if (cfg.max_grad_norm > 0 && gnorm > cfg.max_grad_norm) {
      at::NoGradGuard no_grad;
      const double scale = cfg.max_grad_norm / (gnorm + 1e-6);
      for (auto& [n, p] : spec.params)
        if (p.grad().defined()) p.mutable_grad().mul_(scale);
    }
    double lr = sched.lr();
    if (cfg.warmup_steps > 0 && step < cfg.warmup_steps) lr *= static_cast<double>(step) / cfg.warmup_steps;
    set_lr(*adam, lr);
    adam->step();
    r.steps = step;
    r.tokens += tokens_per_step;
    interval_loss += loss;
    ++interval_steps;
    const double run_s = seconds_since(t0);
    r.wall_s = wall_before + run_s;
    r.tokens_per_s = run_s > 0 ? static_cast<double>(r.tokens - tokens_before) / run_s : 0.0;
    if (writer)
      metrics.append({{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm}, {"tokens", r.tokens},
                      {"tokens_per_s", r.tokens_per_s}, {"elapsed_s", r.wall_s}});
    if (progress) {
      progress->set_status("loss " + fmt(loss) + "  lr " + fmt(lr, 3) + "  " + human(r.tokens_per_s) + " tok/s");
      progress->advance();
    }

    const bool eval_now = step % cfg.eval_every == 0 || step == cfg.steps;
    if (eval_now) {
      const double v = evaluate(spec, val_batches);
      r.final_val = v;
      r.final_train = interval_loss / std::max<int64_t>(interval_steps, 1);
      interval_loss = 0;
      interval_steps = 0;
      LAWCAT_CHECK(std::isfinite(v), Error,
                   "stage '" << spec.name << "': validation loss is not finite at step " << step
                             << "; stopped. Last good checkpoint: " << last_good() << ". " << nonfinite_hint(spec.name));
      const double before = sched.lr();
      if (sched.step(v)) log::info(spec.name, ": validation loss plateaued; lr ", fmt(before, 3), " -> ", fmt(sched.lr(), 3));
      const bool improved = !(v >= r.best_val);
      if (improved) {
        r.best_val = v;
        r.best_step = step;
        save_best(step);
      }
      if (writer) metrics.append({{"step", step}, {"val_loss", v}, {"lr", sched.lr()}});
      log::info(spec.name, " step ", step, "/", cfg.steps, ": train ", fmt(r.final_train), ", val ", fmt(v),
               improved ? " (best)" : "", ", lr ", fmt(sched.lr(), 3), ", ", human(r.tokens_per_s), " tok/s");
    }
    const bool save_now = (cfg.save_every > 0 ? step % cfg.save_every == 0 : eval_now) || step == cfg.steps;
    if (save_now) {
      save(step);
      last_saved = step;
    }
    if (opt.after_step) opt.after_step(step);
    if (g_stop.load()) {
      r.interrupted = true;
      break;
    }
  }
  if (progress) progress->finish();
  if (r.interrupted && r.steps != last_saved) save(r.steps);
  if (r.interrupted)
    log::warn(spec.name, ": interrupted after step ", r.steps, "; checkpoint saved in ", ckroot.string(),
              ". Continue with --resume");
  r.final_lr = sched.lr();
  if (opt.comm) opt.comm->barrier();
  return r;
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
