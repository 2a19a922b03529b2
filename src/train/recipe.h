// The whole run a config describes, in the paper's order (torchtune-style
// recipe: setup from config sections, then each stage, then export):
//
//   teacher   model.path (HF dir) | model.llama2c (converted into <out>/teacher) |
//             pretrain from model.scratch (tokenizer learned from the data)
//   pretrain  full training, cross-entropy (optional; makes or fine-tunes the teacher)
//   distill   stage 1, attention transfer, LAWCAT parameters only
//   lora      stage 2, LoRA on q/k/v/o, cross-entropy
//   export    LoRA merged, HF layout, loadable by model::load_model
//
// Output directory:
//   config.yaml  resolved config (resume refuses a different one)   run.log
//   teacher/     converted or pretrained teacher                     cache/  token cache
//   <stage>/     metrics.jsonl, checkpoints/, best/, done.json, loss.png
//   export/      the exported model                                  summary.md, summary.json
#pragma once
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "config/schema.h"
#include "train/loop.h"

namespace lawcat::train {

struct RecipeOptions {
  bool resume = false;
  std::string stage = "all";      // pretrain, distill, lora, all
  std::string config_source;      // the config file, for the summary
  Communicator* comm = nullptr;   // data parallel (null: one process)
  bool progress = true;
  // Tests: called after each optimizer step of each stage.
  std::function<void(const std::string& stage, int64_t step)> after_step;
};

struct RecipeResult {
  std::vector<StageResult> stages;
  std::filesystem::path output_dir, teacher_dir, export_dir;
  std::string teacher_note;       // where the teacher came from
  std::string data_note;          // token counts
  double teacher_val_ce = std::numeric_limits<double>::quiet_NaN();  // teacher on the LoRA validation batches
  bool interrupted = false;
  std::string device;
  std::string summary() const;    // the human-readable summary (also written to summary.md)
};

// Runs the stages `options.stage` selects. Throws ConfigError when the output
// directory holds another run (without resume) or the saved config differs in
// anything but harmless keys (steps, keep_last, save_every, enabled, threads,
// device, export_dir, export_dtype).
RecipeResult run_recipe(const config::RunConfig& config, const RecipeOptions& options);

// Keys whose change does not invalidate a run being resumed.
bool harmless_config_key(const std::string& key);

// What a resume of the run in `out` (its config.yaml, `saved`) with config `now` refuses: the keys
// that differ beyond the harmless ones, as an error message ending in `new_run_hint`; "" when none.
// run_recipe and `lawcat sweep` (finished runs are skipped only under the config they ran with).
std::string resume_config_conflicts(const std::filesystem::path& out, const config::RunConfig& saved,
                                    const config::RunConfig& now, const std::string& new_run_hint);

// A stage asked for `asked` steps where the run already did `did` (`where` says so: its
// done.json or newest checkpoint): fewer is refused, with this message ("" when not fewer).
std::string fewer_steps_error(const std::string& stage, int64_t asked, int64_t did, const std::string& where);
// A finished stage asked for another number of steps: they are not trained (the warning).
std::string finished_steps_ignored(const std::string& stage, int64_t did, int64_t asked);

}  // namespace lawcat::train
