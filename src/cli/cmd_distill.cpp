// `lawcat distill CONFIG`: the training run a YAML config describes
// (pretrain if asked -> stage 1 attention transfer -> stage 2 LoRA -> export),
// resumable, with a summary at the end. See src/train/recipe.h.
#include <iostream>

#include "cli/command.h"
#include "config/yaml.h"
#include "train/distributed.h"
#include "train/loop.h"
#include "train/recipe.h"
#include "util/log.h"

namespace {
struct DistillArgs {
  std::string config;
  std::vector<std::string> set;
  bool resume = false;
  bool no_progress = false;
  bool fallback = false;
  std::string stage = "all";
};

lawcat::cli::Runner setup_distill(CLI::App& app) {
  auto a = std::make_shared<DistillArgs>();
  app.add_option("config", a->config, "run config (YAML), e.g. configs/quickstart.yaml")->required();
  app.add_option("--set", a->set, "override a config key, e.g. --set distill.steps=50 (repeatable)");
  app.add_flag("--resume", a->resume,
               "continue the run in output_dir from its newest checkpoint (finished stages are skipped)");
  app.add_option("--stage", a->stage, "run one stage only: pretrain, distill, lora, or all")
      ->capture_default_str()
      ->check(CLI::IsMember({"pretrain", "distill", "lora", "all"}));
  app.add_flag("--no-progress", a->no_progress, "no progress bar");
  app.add_flag("--fallback", a->fallback,
               "apply the config's `fallback` overrides even when its teacher is there (without this flag they "
               "apply only when the whole shared data folder is absent)");
  return [a] {
    using namespace lawcat;
    train::install_signal_handlers();
    config::RunConfig cfg = config::load_run_config(
        a->config, a->set, a->fallback ? config::Fallback::kForce : config::Fallback::kAuto);
    auto comm = train::communicator_from_env(cfg.device);
    train::RecipeOptions opt;
    opt.resume = a->resume;
    opt.stage = a->stage;
    opt.config_source = a->config;
    opt.comm = comm.get();
    opt.progress = !a->no_progress;
    train::RecipeResult r = train::run_recipe(cfg, opt);
    if (!comm || comm->rank() == 0) std::cout << r.summary() << std::flush;
    return r.interrupted ? 130 : 0;
  };
}
LAWCAT_COMMAND("distill", "Train: distill a teacher into LAWCAT attention, LoRA fine-tune, export (YAML config)",
               setup_distill);
}  // namespace
