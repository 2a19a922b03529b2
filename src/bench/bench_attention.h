// `lawcat bench attention`: the LAWCAT attention core (q, k, v and the gate's low-rank
// activations -> y: Conv1D on q and k, Hedgehog feature map, GLA gate, normalized GLA)
// against RoPE + scaled_dot_product_attention (causal), forward and forward+backward,
// CUDA-event timing (warm-up, median of reps, inputs rotated among fresh random sets).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lawcat::bench {

struct BenchAttentionOptions {
  std::vector<std::string> shapes = {"1B", "7B"};  // 1B: d = 64; 7B: d = 128 (H = 32, Hkv = 8)
  std::vector<int64_t> seqlens = {1024, 2048, 4096, 8192, 16384, 32768, 65536};
  int64_t batch = 1;
  int64_t heads = 32;    // query heads H (Hkv = H / 4, as in both shapes); the H sweep of docs/kernels.md
  int64_t rank = 16;     // gate rank r
  int64_t conv_width = 4;
  int warmup = 5;
  int reps = 25;
  bool sdpa = true;       // also time RoPE + SDPA
  bool backward = true;   // also time forward + backward
  bool breakdown = false; // time the parts (conv, feature map, gate, GLA) separately
};

struct BenchAttentionRow {
  std::string shape;
  int64_t T = 0, H = 0, Hkv = 0, d = 0;
  double lawcat_fwd_ms = 0, lawcat_fwdbwd_ms = 0, sdpa_fwd_ms = 0, sdpa_fwdbwd_ms = 0;
  double lawcat_fwd_peak_mib = 0, lawcat_fwdbwd_peak_mib = 0, sdpa_fwd_peak_mib = 0, sdpa_fwdbwd_peak_mib = 0;
  double floor_fwd_ms = 0, floor_fwdbwd_ms = 0;  // HBM-traffic floors at the measured copy bandwidth
  std::map<std::string, double> parts_ms;        // breakdown
};

struct BenchAttentionResult {
  std::string device;
  double copy_gbps = 0;  // device-to-device copy, bytes read + written per second / 1e9
  std::vector<BenchAttentionRow> rows;
};

// Runs on the current CUDA device; throws when CUDA kernels are not built or no GPU.
BenchAttentionResult bench_attention(const BenchAttentionOptions& options);

}  // namespace lawcat::bench
