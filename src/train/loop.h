// The training loop every stage shares (torchtune's recipe `train`):
//
//   for step in start+1 .. steps:
//     grad_accum micro-batches: loss(batch) / grad_accum, backward      [B, T+1] token batches
//     (data parallel: all-reduce the gradients)
//     non-finite loss or gradient -> stop, naming the step; nothing is saved
//     clip, warmup, AdamW step; a metrics line per step
//     every eval_every steps: validation loss -> ReduceLROnPlateau, best/ when it improves, checkpoint
//     SIGINT / SIGTERM -> checkpoint, stop
//
// Checkpoints hold everything the next step depends on (trainable weights,
// AdamW moments and step counts, scheduler, loader position, CPU RNG, the
// metrics so far), so --resume continues with exactly the losses an
// uninterrupted run would have produced (bitwise on the CPU with the same
// thread count).
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "config/schema.h"
#include "dataset/packing.h"
#include "train/optim.h"

namespace lawcat::train {

// Data parallel collectives (see train/distributed.h); null = one process.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place: every tensor becomes the mean over ranks.
  virtual void all_reduce_mean(std::vector<at::Tensor>& tensors) = 0;
  virtual void barrier() = 0;
};

// What a stage trains and how.
struct StageSpec {
  std::string name;                 // "pretrain", "distill", "lora": names the folder and the logs
  std::string loss_label;           // e.g. "attention MSE x1000", "cross-entropy"
  config::StageConfig cfg;
  NamedTensors params;              // trainable leaves (fp32), by full name
  // [B, T+1] int64 token batch -> scalar loss with a graph to `params`.
  std::function<at::Tensor(const at::Tensor& batch)> loss;
  // Optional: called before each forward (training and validation), e.g. to refresh LoRA weights.
  std::function<void()> before_forward;
};

struct LoopOptions {
  std::filesystem::path dir;        // <output_dir>/<stage>: metrics, checkpoints, best/
  bool resume = false;              // continue from the newest checkpoint in dir (if any)
  std::string config_yaml;          // the resolved run config, saved in each checkpoint
  uint64_t seed = 0;                // data order
  int64_t tokens_per_example = 0;   // seq_len (for tokens/s)
  Communicator* comm = nullptr;
  bool progress = true;
  // Tests: called after each optimizer step (e.g. to simulate a kill).
  std::function<void(int64_t step)> after_step;
};

struct StageResult {
  std::string stage;
  int64_t steps = 0;                // last completed optimizer step
  int64_t start_step = 0;           // where this invocation started (> 0 when resumed)
  int64_t tokens = 0;               // training tokens (all ranks)
  double init_val = std::numeric_limits<double>::quiet_NaN();   // validation loss before step 1
  double best_val = std::numeric_limits<double>::quiet_NaN();
  int64_t best_step = -1;
  double final_val = std::numeric_limits<double>::quiet_NaN();
  double final_train = std::numeric_limits<double>::quiet_NaN();  // mean loss of the last eval interval
  double final_lr = 0;
  double wall_s = 0;                // training time over all invocations
  double tokens_per_s = 0;
  bool interrupted = false;         // stopped by a signal (checkpoint saved)
  std::filesystem::path best_dir;   // <dir>/best
  nlohmann::json to_json() const;
  static StageResult from_json(const nlohmann::json& j);
};

// Runs (or resumes) one stage. Throws lawcat::Error on a non-finite loss
// (naming the step and the last good checkpoint), CheckpointError when a
// checkpoint cannot be written (the previous ones stay), ConfigError when the
// stage folder already has checkpoints and resume is off.
StageResult run_stage(const StageSpec& spec, const dataset::DataSplits& data, const LoopOptions& options);

// Mean loss over the fixed validation batches, without gradients.
double evaluate(const StageSpec& spec, const std::vector<at::Tensor>& batches);

// SIGINT / SIGTERM set a flag the loop checks between steps (a second signal
// exits at once). Returns the flag so tests can set it.
std::atomic<bool>& stop_flag();
void install_signal_handlers();

// Points "<dir>/metrics.jsonl" -> "<dir>/loss.png" through gnuplot (warns and
// skips when gnuplot is missing). Returns the PNG path or empty.
std::filesystem::path plot_loss_curve(const std::filesystem::path& stage_dir, const std::string& title,
                                      const std::string& loss_label);

}  // namespace lawcat::train
