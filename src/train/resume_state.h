// A checkpoint's state.json, read for a resume (train/loop.cpp). Torch-free (the standard
// library, nlohmann::json, util/error.h), so the libFuzzer target
// tests/fuzz/fuzz_state_json.cpp compiles it without LibTorch.
//
// Every key the resume reads is checked: a missing one, a wrong type or a value out of
// range is a CheckpointError naming the file and the key, never a bare json exception.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace lawcat::train {

struct ResumeState {
  int64_t step = 0;          // optimizer steps done (>= 0)
  int64_t tokens = 0;        // training tokens so far (>= 0)
  double wall_s = 0;
  nlohmann::json scheduler;  // ReduceLROnPlateau::load_state's object (lr, best, num_bad)
  int64_t loader_epoch = 0, loader_index = 0, loader_consumed = 0;  // all >= 0
  std::map<std::string, int64_t> adam_steps;                       // parameter -> Adam steps
  int64_t world = 1;
  double init_val, best_val, final_val;  // NaN when absent or null
  int64_t best_step = -1;
  double interval_loss = 0;
  int64_t interval_steps = 0;
};

// Parses state.json's text (`file` names it in errors).
ResumeState parse_resume_state(const std::string& text, const std::string& file);
// The same from parsed JSON.
ResumeState read_resume_state(const nlohmann::json& s, const std::string& file);

}  // namespace lawcat::train
