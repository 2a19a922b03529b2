// `lawcat bench prefill`: end-to-end model latency, LAWCAT vs the softmax teacher
// in the same run, over context lengths T.
//
// One model is built (random weights from a config.json, or a checkpoint
// directory) and, when it has no LAWCAT layers, swapped with
// model::swap_to_lawcat. The softmax teacher is the same model in
// MixerMode::kTeacher (bit-identical to the original attention) decoding
// through a KV cache; the LAWCAT student decodes through its recurrent state.
// For each T and each of the two:
//   * prefill: a fresh decode state, hidden_states of T random tokens [1, T] and
//     the logits of the last position only (what generation does); warm-up runs,
//     then the median (and min) of `reps` timed runs (CUDA events on the GPU,
//     steady_clock on the CPU);
//   * decode: after a prefill, `decode_warmup` untimed steps, then
//     `decode_tokens` greedy steps timed together -> tokens/s at context T;
//   * memory: peak allocated bytes of the CUDA caching allocator over one
//     prefill + decode (reset before), total and above what was allocated
//     before it (weights); and the decode state's own bytes (KV cache vs
//     constant LAWCAT state) on any device.
// An out-of-memory at some T is reported in that row; the run goes on.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/schema.h"

namespace lawcat::bench {

struct BenchPrefillOptions {
  std::string command = "bench prefill";  // names the command in errors and logs
  std::string model_dir;    // a checkpoint (teacher or LAWCAT model), or
  std::string config_json;  // a config.json for random weights
  std::vector<int64_t> lengths = {1024, 2048, 4096, 8192, 16384, 32768, 65536};
  std::string device = "cuda";
  std::string dtype = "auto";  // auto: bfloat16 on CUDA, float32 on the CPU
  int warmup = 2;
  int reps = 5;
  int64_t decode_tokens = 32;
  int64_t decode_warmup = 4;
  // Prefill in chunks of this many tokens through the decode state (0: one pass). Bounds the
  // prefill's activations, so a decoder's peak memory no longer grows with the prompt.
  int64_t prefill_chunk = 0;
  // Decode: each greedy step replays one CUDA graph of the whole model step
  // (bench/graph_decode.h) instead of launching its kernels from the host, for the LAWCAT model
  // and the softmax model (whose KV caches are made static); the greedy tokens are checked
  // against the eager step's.
  bool cuda_graph = false;
  bool softmax = true;      // time the softmax teacher
  bool lawcat = true;       // time the LAWCAT student
  config::AttentionConfig attention;  // the swap, when the model has no LAWCAT layers
  uint64_t seed = 0;
  // Kernel profiles (bench/profile.h) of one prefill and of `profile_decode` decode
  // steps, for each kind at these lengths (after their timings; not in the numbers).
  std::vector<int64_t> profile_lengths;
  int64_t profile_decode = 8;
  std::string profile_trace_dir;  // Chrome traces there when set
};

struct BenchPrefillRow {
  std::string kind;            // "softmax" or "lawcat"
  int64_t T = 0;
  double prefill_ms = 0, prefill_min_ms = 0;
  double prefill_tokens_per_s = 0;
  double decode_ms_per_token = 0, decode_tokens_per_s = 0;
  std::string decode_mode = "eager";  // or "cuda graph"
  int graph_tokens_equal = -1;        // cuda graph: 1 when its greedy tokens equal the eager step's, 0 if not
  double peak_mib = -1;        // peak allocated (CUDA only; -1 otherwise)
  double peak_above_base_mib = -1;
  double state_mib = 0;        // decode state after prefill + decode
  double rss_mib = -1;         // resident memory of the process after prefill + decode (Linux; -1 elsewhere)
  double peak_rss_mib = -1;    // its high-water mark so far (covers every earlier row of the run too)
  std::string error;           // e.g. "out of memory"
  std::string profile;         // profile summaries (profile_lengths), text
};

struct BenchPrefillResult {
  std::string device, dtype, source;
  int64_t num_layers = 0, lawcat_layers = 0, parameters = 0;
  double weights_mib = 0;
  nlohmann::json model_config;
  std::vector<BenchPrefillRow> rows;
};

// The row of (kind, T), or nullptr; the lengths of the rows in run order; the "model: ..." line.
const BenchPrefillRow* find_row(const BenchPrefillResult& result, const std::string& kind, int64_t T);
std::vector<int64_t> row_lengths(const BenchPrefillResult& result);
std::string describe_model(const BenchPrefillResult& result);

BenchPrefillResult bench_prefill(const BenchPrefillOptions& options);
std::string format_bench_prefill(const BenchPrefillResult& result);
nlohmann::json bench_prefill_json(const BenchPrefillResult& result, const BenchPrefillOptions& options);

}  // namespace lawcat::bench
