// Training checkpoints: one directory per save, written into a temporary
// directory beside it and renamed into place, so a crash or a full disk never
// leaves a half-written "latest" checkpoint.
//
//   <stage>/checkpoints/step-00000120/
//     trainable.safetensors   the trained parameters (fp32), by full name
//     optimizer.safetensors   AdamW exp_avg / exp_avg_sq per parameter, "rng.cpu" generator state
//     state.json              step, tokens, scheduler, loader position, best / initial val loss, Adam steps
//                             (train/resume_state.h: TrainState, to_json / from_json)
//     config.yaml             the resolved run config
//   <stage>/best/             same layout (the best validation loss so far)
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/optim.h"

namespace lawcat::train {

struct CheckpointFiles {
  NamedTensors trainable;
  NamedTensors optimizer;   // includes "rng.cpu" when saved
  nlohmann::json state;
  std::string config_yaml;
};

// Writes `dir` atomically (temp dir + rename; an existing `dir` is replaced only
// after the new one is complete). On failure the temp dir is removed and a
// CheckpointError says so; whatever was at `dir` before is left untouched.
void save_checkpoint_dir(const std::filesystem::path& dir, const CheckpointFiles& files);
// Reads a checkpoint directory (CheckpointError naming the file when incomplete).
CheckpointFiles load_checkpoint_dir(const std::filesystem::path& dir);

std::string step_dir_name(int64_t step);  // "step-00000120"
// Complete checkpoints under `root` ("step-*" with a state.json), sorted by step.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& root);
// Removes all but the newest `keep` checkpoints (and stale temp dirs).
void prune_checkpoints(const std::filesystem::path& root, int64_t keep);

// The CPU generator's state (a uint8 tensor) and its restore.
at::Tensor cpu_rng_state();
void set_cpu_rng_state(const at::Tensor& state);

}  // namespace lawcat::train
