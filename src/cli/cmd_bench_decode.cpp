// `lawcat bench decode`: greedy decoding tokens/s and resident memory at long contexts,
// the softmax teacher beside its LAWCAT student (bench/bench_decode.h).
//
//   lawcat bench decode --model ../shared/data/models/retriever13m --device cpu --threads 2
//   scripts/bench_decode.sh     # one process per (kind, T), with Hugging Face transformers beside it
#include <ATen/Parallel.h>

#include <iostream>

#include "bench/bench_decode.h"
#include "cli/command.h"
#include "util/fs.h"

namespace {

struct BenchDecodeArgs {
  lawcat::bench::BenchPrefillOptions opt;
  std::string json;
  int threads = 0;
  bool no_softmax = false, no_lawcat = false;
};

lawcat::cli::Runner setup_bench_decode(CLI::App& app) {
  auto a = std::make_shared<BenchDecodeArgs>();
  auto& o = a->opt;
  o.device = "cpu";
  o.lengths = {1024, 4096, 16384, 32768};
  o.decode_tokens = 64;
  auto* model = app.add_option("--model", o.model_dir, "model directory (a teacher is swapped to LAWCAT)");
  auto* config = app.add_option("--config", o.config_json, "config.json for a random-weight model");
  model->excludes(config);
  config->excludes(model);
  app.add_option("--lengths", o.lengths, "context lengths T (tokens before decoding starts)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--dtype", o.dtype, "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float16, float32")
      ->capture_default_str();
  app.add_option("--threads", a->threads, "CPU threads (0: $LAWCAT_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--decode-tokens", o.decode_tokens, "timed greedy steps at each context")
      ->check(lawcat::cli::at_least(1))
      ->capture_default_str();
  app.add_option("--decode-warmup", o.decode_warmup, "untimed greedy steps before them")->capture_default_str();
  app.add_option("--prefill-chunk", o.prefill_chunk,
                 "prefill the prompt in chunks of this many tokens through the decode state (0: one pass)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--gate-rank", o.attention.gate_rank, "LAWCAT gate rank for the swap")->capture_default_str();
  app.add_option("--conv-width", o.attention.conv_width, "LAWCAT conv width for the swap")->capture_default_str();
  app.add_option("--seed", o.seed, "seed for random weights and tokens")->capture_default_str();
  app.add_flag("--no-softmax", a->no_softmax, "skip the softmax teacher");
  app.add_flag("--no-lawcat", a->no_lawcat, "skip the LAWCAT student");
  app.add_option("--json", a->json, "write every number to this JSON file");
  return [a] {
    if (a->threads > 0) at::set_num_threads(a->threads);
    auto o = lawcat::bench::decode_bench_options(a->opt);
    o.softmax = !a->no_softmax;
    o.lawcat = !a->no_lawcat;
    const auto r = lawcat::bench::bench_prefill(o);
    std::cout << lawcat::bench::format_bench_decode(r);
    if (!a->json.empty()) {
      auto j = lawcat::bench::bench_prefill_json(r, o);
      j["threads"] = at::get_num_threads();
      lawcat::fs::atomic_write_text(a->json, j.dump(2) + "\n");
      std::cout << "wrote " << a->json << "\n";
    }
    return 0;
  };
}
LAWCAT_COMMAND("bench decode",
               "Greedy decoding tokens/s and resident memory at long contexts: LAWCAT vs the softmax teacher",
               setup_bench_decode);
}  // namespace
