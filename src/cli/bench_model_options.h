// The options `lawcat bench prefill` and `lawcat bench decode` share: which model (a directory or
// a config.json with random weights), lengths, device and dtype; the LAWCAT swap; which kinds run
// and where the JSON goes. Both commands fill one bench::BenchPrefillOptions.
#pragma once

#include <memory>
#include <string>

#include "bench/bench_prefill.h"
#include "cli/command.h"

namespace lawcat::cli {

struct BenchModelArgs {
  bench::BenchPrefillOptions opt;
  std::string json;
  bool no_softmax = false, no_lawcat = false;
};

// --model | --config, --lengths, --device, --dtype (registered first, as --help lists them).
inline void add_bench_model_options(CLI::App& app, BenchModelArgs& a, const std::string& lengths_help,
                                    const std::string& device_help) {
  auto& o = a.opt;
  auto* model = app.add_option("--model", o.model_dir, "model directory (a teacher is swapped to LAWCAT)");
  auto* config = app.add_option("--config", o.config_json, "config.json for a random-weight model");
  model->excludes(config);
  config->excludes(model);
  app.add_option("--lengths", o.lengths, lengths_help)->delimiter(',')->capture_default_str();
  app.add_option("--device", o.device, device_help)->capture_default_str();
  app.add_option("--dtype", o.dtype, "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float16, float32")
      ->capture_default_str();
}

// --gate-rank, --conv-width, --seed, --no-softmax, --no-lawcat, --json (registered last).
inline void add_bench_swap_options(CLI::App& app, BenchModelArgs& a) {
  auto& o = a.opt;
  app.add_option("--gate-rank", o.attention.gate_rank, "LAWCAT gate rank for the swap")->capture_default_str();
  app.add_option("--conv-width", o.attention.conv_width, "LAWCAT conv width for the swap")->capture_default_str();
  app.add_option("--seed", o.seed, "seed for random weights and tokens")->capture_default_str();
  app.add_flag("--no-softmax", a.no_softmax, "skip the softmax teacher");
  app.add_flag("--no-lawcat", a.no_lawcat, "skip the LAWCAT student");
  app.add_flag("--cuda-graph", o.cuda_graph,
               "decode: replay one CUDA graph of the whole step per token (GPU; the softmax model with a static KV cache; tokens checked against eager)");
  app.add_option("--json", a.json, "write every number to this JSON file");
}

}  // namespace lawcat::cli
