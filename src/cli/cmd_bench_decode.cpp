// `lawcat bench decode`: greedy decoding tokens/s and resident memory at long contexts,
// the softmax teacher beside its LAWCAT student (bench/bench_decode.h).
//
//   lawcat bench decode --model ../shared/data/models/retriever13m --device cpu --threads 2
//   scripts/bench_decode.sh     # one process per (kind, T), with Hugging Face transformers beside it
#include <ATen/Parallel.h>

#include <iostream>

#include "bench/bench_decode.h"
#include "cli/bench_model_options.h"
#include "util/fs.h"

namespace {

struct BenchDecodeArgs : lawcat::cli::BenchModelArgs {
  int threads = 0;
};

lawcat::cli::Runner setup_bench_decode(CLI::App& app) {
  auto a = std::make_shared<BenchDecodeArgs>();
  auto& o = a->opt;
  o.device = "cpu";
  o.lengths = {1024, 4096, 16384, 32768};
  o.decode_tokens = 64;
  lawcat::cli::add_bench_model_options(app, *a, "context lengths T (tokens before decoding starts)",
                                       "cpu, cuda or cuda:N");
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
  lawcat::cli::add_bench_swap_options(app, *a);
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
