// `lawcat bench attention`: LAWCAT attention core vs RoPE + SDPA on the GPU
// (bench/bench_attention.h). Prints a table; --json FILE writes every number.
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "bench/bench_attention.h"
#include "util/format.h"
#include "util/fs.h"

namespace {

struct BenchArgs {
  lawcat::bench::BenchAttentionOptions opt;
  std::string json;
  bool no_sdpa = false, fwd_only = false;
};

std::string fmt(double x, int prec = 3) { return lawcat::format::fixed(x, prec); }

lawcat::cli::Runner setup_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.require_subcommand(1);
  CLI::App* att = app.add_subcommand("attention", "LAWCAT attention core (conv, feature map, gate, GLA) vs RoPE + SDPA");
  att->add_option("--shapes", a->opt.shapes, "head shapes: 1B (d=64) and/or 7B (d=128); H=32, Hkv=8")
      ->delimiter(',')
      ->capture_default_str();
  att->add_option("--seqlens", a->opt.seqlens, "sequence lengths T")->delimiter(',')->capture_default_str();
  att->add_option("--batch", a->opt.batch, "batch size B")->capture_default_str();
  att->add_option("--heads", a->opt.heads, "query heads H (Hkv = H / 4)")->capture_default_str()->check(
      CLI::Range(int64_t{4}, int64_t{1024}));
  att->add_option("--reps", a->opt.reps, "timed repetitions (median reported)")->capture_default_str()->check(
      CLI::Range(1, 100000));
  att->add_option("--warmup", a->opt.warmup, "untimed warm-up runs")->capture_default_str();
  att->add_flag("--no-sdpa", a->no_sdpa, "skip the RoPE + SDPA baseline");
  att->add_flag("--fwd-only", a->fwd_only, "skip forward + backward");
  att->add_flag("--breakdown", a->opt.breakdown, "also time conv, feature map, gate, GLA fwd / bwd separately");
  att->add_option("--json", a->json, "write all numbers to this JSON file");
  return [a] {
    a->opt.sdpa = !a->no_sdpa;
    a->opt.backward = !a->fwd_only;
    const auto r = lawcat::bench::bench_attention(a->opt);
    std::cout << "device: " << r.device << ", copy bandwidth " << fmt(r.copy_gbps, 0)
              << " GB/s (read + write); times in ms, median of " << a->opt.reps << " reps\n";
    std::cout << "shape      T | lawcat fwd  sdpa fwd  speedup | lawcat f+b  sdpa f+b  speedup | floor fwd (frac) | "
                 "peak MiB lawcat f+b / sdpa f+b\n";
    for (const auto& row : r.rows) {
      auto ratio = [](double a, double b) { return a > 0 && b > 0 ? fmt(b / a, 2) + "x" : std::string("-"); };
      std::cout << std::setw(5) << row.shape << std::setw(7) << row.T << " | " << std::setw(10) << fmt(row.lawcat_fwd_ms)
                << std::setw(10) << fmt(row.sdpa_fwd_ms) << std::setw(9) << ratio(row.lawcat_fwd_ms, row.sdpa_fwd_ms)
                << " | " << std::setw(10) << fmt(row.lawcat_fwdbwd_ms) << std::setw(10) << fmt(row.sdpa_fwdbwd_ms)
                << std::setw(9) << ratio(row.lawcat_fwdbwd_ms, row.sdpa_fwdbwd_ms) << " | " << std::setw(7)
                << fmt(row.floor_fwd_ms) << " (" << fmt(row.floor_fwd_ms / row.lawcat_fwd_ms, 2) << ") | "
                << fmt(row.lawcat_fwdbwd_peak_mib, 0) << " / " << fmt(row.sdpa_fwdbwd_peak_mib, 0) << "\n";
      if (!row.parts_ms.empty()) {
        std::cout << "             parts:";
        for (const auto& [k, v] : row.parts_ms) std::cout << " " << k << "=" << fmt(v);
        std::cout << "\n";
      }
    }
    if (!a->json.empty()) {
      nlohmann::json j = {{"device", r.device}, {"copy_gbps", r.copy_gbps}, {"reps", a->opt.reps},
                          {"warmup", a->opt.warmup}, {"batch", a->opt.batch}, {"heads", a->opt.heads}, {"rows", nlohmann::json::array()}};
      for (const auto& row : r.rows)
        j["rows"].push_back({{"shape", row.shape}, {"T", row.T}, {"H", row.H}, {"Hkv", row.Hkv}, {"d", row.d},
                             {"lawcat_fwd_ms", row.lawcat_fwd_ms}, {"lawcat_fwdbwd_ms", row.lawcat_fwdbwd_ms},
                             {"sdpa_fwd_ms", row.sdpa_fwd_ms}, {"sdpa_fwdbwd_ms", row.sdpa_fwdbwd_ms},
                             {"lawcat_fwd_peak_mib", row.lawcat_fwd_peak_mib},
                             {"lawcat_fwdbwd_peak_mib", row.lawcat_fwdbwd_peak_mib},
                             {"sdpa_fwd_peak_mib", row.sdpa_fwd_peak_mib},
                             {"sdpa_fwdbwd_peak_mib", row.sdpa_fwdbwd_peak_mib}, {"floor_fwd_ms", row.floor_fwd_ms},
                             {"floor_fwdbwd_ms", row.floor_fwdbwd_ms}, {"parts_ms", row.parts_ms}});
      lawcat::fs::atomic_write_text(a->json, j.dump(2) + "\n");
      std::cout << "wrote " << a->json << "\n";
    }
    return 0;
  };
}
LAWCAT_COMMAND("bench", "Benchmarks: attention (the LAWCAT core vs SDPA, GPU), decode, prefill, train, train-parts", setup_bench);

}  // namespace
