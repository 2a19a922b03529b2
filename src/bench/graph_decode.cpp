#include "bench/graph_decode.h"

#include <ATen/core/grad_mode.h>

#include <memory>

#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "model/attention.h"
#include "model/lawcat_attention.h"
#include "model/swap.h"
#include "util/error.h"

namespace lawcat::bench {

namespace {
// The softmax attention a layer runs now: its own mixer, or a LAWCAT layer's teacher in teacher
// mode; nullptr for a LAWCAT layer in student mode.
const model::LlamaAttentionImpl* softmax_of(model::LlamaForCausalLMImpl& m, int64_t i) {
  const auto& mixer = m.layer(i)->self_attn;
  if (auto l = std::dynamic_pointer_cast<model::LawcatAttentionImpl>(mixer))
    return l->mode() == model::MixerMode::kTeacher ? l->teacher().get() : nullptr;
  return dynamic_cast<const model::LlamaAttentionImpl*>(mixer.get());
}
}  // namespace

std::string graph_decode_unsupported(model::LlamaForCausalLMImpl& m) {
  for (int64_t i = 0; i < m.num_layers(); ++i) {
    if (const auto* soft = softmax_of(m, i)) {
      if (soft->options().window() > 0)
        return "layer " + std::to_string(i) + " is softmax attention with a sliding window, whose cache drops positions";
      continue;
    }
    auto l = std::dynamic_pointer_cast<model::LawcatAttentionImpl>(m.layer(i)->self_attn);
    if (!l) return "layer " + std::to_string(i) + " has a token mixer that is neither softmax attention nor LAWCAT";
    if (l->options().window > 0)
      return "layer " + std::to_string(i) + " has the softmax window, whose cache grows per token";
    if (l->options().rope)  // the captured step would keep the capture's position
      return "layer " + std::to_string(i) + " has RoPE on the linear path (positions change per token)";
  }
  return "";
}

bool graph_decode_needs_static_cache(model::LlamaForCausalLMImpl& m) {
  for (int64_t i = 0; i < m.num_layers(); ++i)
    if (softmax_of(m, i)) return true;
  return false;
}

struct GraphedGreedyStep::Impl {
#ifdef LAWCAT_HAVE_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;  // made at capture: its constructor talks to the driver
#endif
  std::vector<at::Tensor> warmup_tokens;
  at::Tensor in, out;
  bool fed = false;
  int64_t replays_left = -1;  // with static KV caches: replays their capacity allows; -1 = unbounded
};

namespace {
at::Tensor greedy(model::LlamaForCausalLMImpl& m, model::DecodeState& state, const at::Tensor& token) {
  return m.forward(token, state).select(1, 0).argmax(-1).view({1, 1});
}
}  // namespace

GraphedGreedyStep::GraphedGreedyStep(model::LlamaForCausalLMImpl& m, model::DecodeState& state,
                                     const at::Tensor& next, int warmup, int64_t max_steps)
    : impl_(std::make_unique<Impl>()) {
  const std::string why = graph_decode_unsupported(m);
  LAWCAT_CHECK(why.empty(), ConfigError, "CUDA graph decode: " << why);
  LAWCAT_CHECK(next.is_cuda() && next.numel() == 1, ConfigError,
               "CUDA graph decode: the step's token must be one id on the GPU");
#ifdef LAWCAT_HAVE_CUDA
  at::NoGradGuard no_grad;
  if (graph_decode_needs_static_cache(m)) {
    LAWCAT_CHECK(max_steps > 0, ConfigError,
                 "CUDA graph decode: softmax layers need the number of steps, to size their static KV caches");
    const int64_t capacity = state.position + warmup + max_steps;
    model::make_kv_caches_static(state, capacity);
    m.rope_cos_sin(0, capacity);  // RoPE rows for every position the replays reach, grown now
    impl_->replays_left = max_steps;
  }
  // Capture needs a stream other than the default one; it starts after the work queued so far.
  const at::cuda::CUDAStream caller = at::cuda::getCurrentCUDAStream();
  const at::cuda::CUDAStream side = at::cuda::getStreamFromPool();
  at::cuda::CUDAEvent queued;
  queued.record(caller);
  queued.block(side);
  {
    c10::cuda::CUDAStreamGuard guard(side);
    at::Tensor token = next;
    for (int i = 0; i < warmup; ++i) {
      token = greedy(m, state, token);
      impl_->warmup_tokens.push_back(token.clone());
    }
    impl_->in = token.clone();
    m.rope_cos_sin(state.position, 1);  // the tables grow now if they must (a host copy), not in the capture
    side.synchronize();
    impl_->graph = std::make_unique<at::cuda::CUDAGraph>();
    impl_->graph->capture_begin();
    try {
      impl_->out = greedy(m, state, impl_->in);
    } catch (...) {
      try {  // ends the capture and gives the allocator back its normal pool
        impl_->graph->capture_end();
      } catch (...) {
      }
      throw;
    }
    impl_->graph->capture_end();
  }
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(caller);
#else
  (void)state;
  (void)warmup;
  (void)max_steps;
  throw ConfigError("CUDA graph decode: lawcat was built without CUDA");
#endif
}

GraphedGreedyStep::~GraphedGreedyStep() = default;

const std::vector<at::Tensor>& GraphedGreedyStep::warmup_tokens() const { return impl_->warmup_tokens; }

const at::Tensor& GraphedGreedyStep::step() {
#ifdef LAWCAT_HAVE_CUDA
  LAWCAT_CHECK(impl_->replays_left != 0, ConfigError,
               "CUDA graph decode: the static KV caches are full (max_steps given at the capture)");
  if (impl_->replays_left > 0) --impl_->replays_left;
  if (impl_->fed) impl_->in.copy_(impl_->out);
  impl_->graph->replay();
  impl_->fed = true;
#endif
  return impl_->out;
}

}  // namespace lawcat::bench
