// One greedy decode step of a model captured once in a CUDA graph and replayed per token, so
// that decode timings measure the GPU rather than the host's kernel launches (docs/eval.md:
// the eager step of a 1B model is host-bound). The step is model.forward on one token
// through the decode state, then argmax: every kernel of every layer in one graph launch.
//
// Only a step of fixed shapes whose state is updated in place can be replayed: LAWCAT layers
// without the softmax window (the step kernels update S, z and the conv caches in place), and
// softmax layers without a sliding window, whose KV caches are first made static
// (model::make_kv_caches_static: a buffer of fixed capacity written at a position kept on the
// device, RoPE's row read from there too). The state's host-side counters stop at the capture:
// step the state only through the graph afterwards. The graph reads the model's weights and its
// RoPE tables where they were at the capture: while it lives, do not move the model or run it
// eagerly past the positions the capture prepared (the tables would be reallocated).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "model/llama.h"

namespace lawcat::bench {

// Empty when every layer of m can be captured; else why not (names the first layer that cannot).
std::string graph_decode_unsupported(model::LlamaForCausalLMImpl& m);
// Whether m runs softmax attention in some layer (its own, or a LAWCAT layer's teacher in teacher
// mode): then the capture needs static KV caches, sized by max_steps.
bool graph_decode_needs_static_cache(model::LlamaForCausalLMImpl& m);

class GraphedGreedyStep {
 public:
  // Runs `warmup` eager steps on the capture stream (cuBLAS and the allocator settle there),
  // starting from `next` [1, 1] (on the GPU), then captures the step that consumes the last
  // token. With softmax layers, state's KV caches are made static first, with room for the
  // warm-up steps and max_steps replays (step() refuses more). Throws ConfigError without CUDA,
  // for a model graph_decode_unsupported names, or for softmax layers without max_steps.
  GraphedGreedyStep(model::LlamaForCausalLMImpl& m, model::DecodeState& state, const at::Tensor& next,
                    int warmup = 2, int64_t max_steps = 0);
  ~GraphedGreedyStep();
  GraphedGreedyStep(const GraphedGreedyStep&) = delete;
  GraphedGreedyStep& operator=(const GraphedGreedyStep&) = delete;

  // The tokens the eager warm-up steps produced, [1, 1] each.
  const std::vector<at::Tensor>& warmup_tokens() const;
  // Replays the graph on the current stream: feeds the previous output (the first time, the
  // last warm-up token) and returns the next token [1, 1], a static buffer the next call
  // overwrites.
  const at::Tensor& step();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lawcat::bench
