// `lawcat bench train`: training-step throughput (tokens/s) for a model shape from a
// config.json with random weights, per mode (teacher-fwd, full, distill, lora); and
// `lawcat bench train-parts`: where a training step's time goes on a real checkpoint (CPU).
// The benchmarks are bench/bench_train.h; this file parses options and prints.
//
//   lawcat bench train --config configs/llama3.2-1b.config.json --device cuda --profile --json train.json
//   lawcat convert --llama2c stories260K.bin --tokenizer tok512.bin --out /tmp/s260k
//   lawcat bench train-parts --model /tmp/s260k --threads 2
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "bench/bench_train.h"
#include "cli/command.h"

namespace {
using namespace lawcat;

void print_now(const std::string& text) {
  std::printf("%s", text.c_str());
  std::fflush(stdout);
}

lawcat::cli::Runner setup_bench_train(CLI::App& app) {
  auto a = std::make_shared<bench::BenchTrainOptions>();
  auto json = std::make_shared<std::string>();
  app.add_option("--config", a->config, "config.json of the model shape (random weights)")->required();
  app.add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  app.add_option("--dtype", a->dtype, "frozen weights: bfloat16, float16, float32 (or bf16, fp16, fp32)")->capture_default_str();
  app.add_option("--modes", a->modes, "comma list of teacher-fwd, full, distill, lora")->capture_default_str();
  app.add_option("--batch", a->batch, "sequences per step")->capture_default_str();
  app.add_option("--seq", a->seq, "tokens per sequence")->capture_default_str();
  app.add_option("--steps", a->steps, "timed steps (median reported)")->capture_default_str();
  app.add_option("--warmup", a->warmup, "untimed steps first")->capture_default_str();
  app.add_option("--json", *json, "write the numbers to this file");
  app.add_flag("--profile", a->profile, "print a kernel profile of one more step per mode");
  app.add_option("--profile-traces", a->profile_traces, "write Chrome traces of the profiled steps into this folder");
  return [a, json] {
    const auto rows = bench::bench_train(*a, print_now);
    std::string profiles;
    for (const auto& r : rows) profiles += r.profile;
    std::printf("%s", profiles.c_str());
    if (!json->empty()) {
      std::ofstream f(*json);
      f << bench::bench_train_json(*a, rows).dump(2) << "\n";
    }
    return 0;
  };
}
LAWCAT_COMMAND("bench train", "Training-step throughput (teacher fwd, full, distill, LoRA) on random weights from a config.json",
               setup_bench_train);

lawcat::cli::Runner setup_bench_train_parts(CLI::App& app) {
  auto a = std::make_shared<bench::BenchTrainPartsOptions>();
  app.add_option("--model", a->model_dir, "Hugging Face model directory (a teacher; swapped to LAWCAT here)")
      ->required();
  app.add_option("--batch", a->batch, "sequences per step")->capture_default_str()->check(cli::at_least(1));
  app.add_option("--seq", a->seq, "tokens per sequence")->capture_default_str()->check(cli::at_least(1));
  app.add_option("--threads", a->threads, "LibTorch CPU threads (0: $LAWCAT_THREADS or all cores)")
      ->capture_default_str();
  app.add_flag("--ftz", a->flush_denormal, "flush denormals to zero");
  return [a] {
    bench::bench_train_parts(*a, print_now);
    return 0;
  };
}
LAWCAT_COMMAND("bench train-parts",
               "Where a training step's time goes on a checkpoint (CPU): teacher, distill, student and LoRA passes",
               setup_bench_train_parts);
}  // namespace
