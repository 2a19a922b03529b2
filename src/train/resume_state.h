// A checkpoint's state.json: the TrainState that train/loop.cpp writes and reads for a resume. Torch-free (the standard
// library, nlohmann::json, util/error.h), so the libFuzzer target
// tests/fuzz/fuzz_state_json.cpp compiles it without LibTorch.
//
// Every key the resume reads is checked: a missing one, a wrong type or a value out of
// range is a CheckpointError naming the file and the key, never a bare json exception.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace lawcat::train {

// A stage's training state besides its tensors: what a checkpoint's state.json holds
// and what the next step depends on (step, tokens, scheduler, loader position, Adam
// step counts, validation losses, the current eval interval). Written by to_json,
// read back, with every key checked, by from_json.
struct TrainState {
  std::string stage;
  int64_t step = 0;          // optimizer steps done (>= 0)
  int64_t tokens = 0;        // training tokens so far (>= 0)
  double wall_s = 0;
  nlohmann::json scheduler;  // ReduceLROnPlateau::load_state's object (lr, best, num_bad)
  int64_t loader_epoch = 0, loader_index = 0, loader_consumed = 0;  // all >= 0
  std::map<std::string, int64_t> adam_steps;                       // parameter -> Adam steps
  int64_t world = 1;
  double init_val = kNoLoss, best_val = kNoLoss, final_val = kNoLoss;  // NaN when absent or null
  int64_t best_step = -1;
  double interval_loss = 0;
  int64_t interval_steps = 0;

  static constexpr double kNoLoss = std::numeric_limits<double>::quiet_NaN();
  // state.json's object (a loss that is not finite is written as null).
  nlohmann::json to_json() const;
  // The same, read back; `file` names it in errors (read_resume_state).
  static TrainState from_json(const nlohmann::json& s, const std::string& file);
};
using ResumeState = TrainState;

// Parses state.json's text (`file` names it in errors).
ResumeState parse_resume_state(const std::string& text, const std::string& file);
// The same from parsed JSON.
ResumeState read_resume_state(const nlohmann::json& s, const std::string& file);

}  // namespace lawcat::train
