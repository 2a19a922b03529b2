// One greedy decode step of a model captured once in a CUDA graph and replayed per token, so
// that decode timings measure the GPU rather than the host's kernel launches (docs/eval.md:
// the eager step of a 1B model is host-bound). The step is model.forward on one token
// through the decode state, then argmax: every kernel of every layer in one graph launch.
//
// Only a step of fixed shapes whose state is updated in place can be replayed: LAWCAT layers
// without the softmax window (the step kernels update S, z and the conv caches in place). A
// KV cache grows by a token per step, so the softmax teacher is not captured here. The
// state's host-side counters stop at the capture: step the state only through the graph
// afterwards.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "model/llama.h"

namespace lawcat::bench {

// Empty when every layer of m can be captured; else why not (names the first layer that cannot).
std::string graph_decode_unsupported(model::LlamaForCausalLMImpl& m);

class GraphedGreedyStep {
 public:
  // Runs `warmup` eager steps on the capture stream (cuBLAS and the allocator settle there),
  // starting from `next` [1, 1] (on the GPU), then captures the step that consumes the last
  // token. Throws ConfigError without CUDA or for a model graph_decode_unsupported names.
  GraphedGreedyStep(model::LlamaForCausalLMImpl& m, model::DecodeState& state, const at::Tensor& next,
                    int warmup = 2);
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
