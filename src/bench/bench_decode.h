// `lawcat bench decode`: greedy decoding speed and memory at long contexts, the softmax
// teacher (KV cache) beside its LAWCAT student (constant state): the edge-deployment view.
//
// The measurements are bench_prefill's (bench/bench_prefill.h) with decode-first settings:
// one prefill of T random tokens per (kind, T) (timed once, reported in seconds), then
// `decode_warmup` untimed and `decode_tokens` timed greedy steps; on the CPU the resident memory
// (VmRSS) after them. One process keeps the memory it once held, so for memory figures that
// belong to one context alone, run one length and one kind per process (scripts/bench_decode.sh
// does, and runs Hugging Face transformers on the same cores beside it).
#pragma once
#include <string>

#include "bench/bench_prefill.h"

namespace lawcat::bench {

// bench_prefill options for a decode benchmark: no warm-up prefill, one timed prefill.
BenchPrefillOptions decode_bench_options(BenchPrefillOptions o);

// The decode table: tokens/s, resident memory and state size per context, softmax vs LAWCAT.
std::string format_bench_decode(const BenchPrefillResult& result);

}  // namespace lawcat::bench
