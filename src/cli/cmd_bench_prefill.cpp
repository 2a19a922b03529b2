// `lawcat bench prefill`: end-to-end prefill latency, decode tokens/s and peak
// memory, LAWCAT vs the softmax teacher in one run (bench/bench_prefill.h).
//
//   lawcat bench prefill --config configs/llama3.2-1b.config.json --device cuda --json prefill.json
//   lawcat bench prefill --model out/export --lengths 1024,4096,16384
#include <iostream>

#include "bench/bench_prefill.h"
#include "cli/bench_model_options.h"
#include "util/fs.h"

namespace {

lawcat::cli::Runner setup_bench_prefill(CLI::App& app) {
  auto a = std::make_shared<lawcat::cli::BenchModelArgs>();
  auto& o = a->opt;
  lawcat::cli::add_bench_model_options(app, *a, "context lengths T", "cuda, cuda:N or cpu");
  app.add_option("--warmup", o.warmup, "untimed prefills per (kind, T)")->capture_default_str();
  app.add_option("--reps", o.reps, "timed prefills (median reported)")->capture_default_str()->check(
      lawcat::cli::at_least(1));
  app.add_option("--decode-tokens", o.decode_tokens, "timed decode steps after the prefill")->capture_default_str();
  app.add_option("--window", o.attention.window, "sliding softmax window of the hybrid (0 = off)")
      ->capture_default_str();
  lawcat::cli::add_bench_swap_options(app, *a);
  app.add_option("--profile", o.profile_lengths,
                 "also print a kernel profile of one prefill and of --profile-decode steps at these lengths")
      ->delimiter(',');
  app.add_option("--profile-decode", o.profile_decode, "decode steps in each decode profile")->capture_default_str();
  app.add_option("--profile-traces", o.profile_trace_dir, "write Chrome traces of the profiles into this folder");
  return [a] {
    auto o = a->opt;
    o.softmax = !a->no_softmax;
    o.lawcat = !a->no_lawcat;
    const auto r = lawcat::bench::bench_prefill(o);
    for (const auto& row : r.rows)
      if (!row.profile.empty()) std::cout << row.profile;
    std::cout << lawcat::bench::format_bench_prefill(r);
    if (!a->json.empty()) {
      lawcat::fs::atomic_write_text(a->json, lawcat::bench::bench_prefill_json(r, o).dump(2) + "\n");
      std::cout << "wrote " << a->json << "\n";
    }
    return 0;
  };
}
LAWCAT_COMMAND("bench prefill",
               "End-to-end prefill latency, decode tokens/s and peak memory: LAWCAT vs the softmax teacher",
               setup_bench_prefill);
}  // namespace
