#include "bench/graph_decode.h"

#include <ATen/core/grad_mode.h>

#include <memory>

#ifdef LAWCAT_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "model/swap.h"
#include "util/error.h"

namespace lawcat::bench {

std::string graph_decode_unsupported(model::LlamaForCausalLMImpl& m) {
  const auto layers = model::lawcat_layers(m);
  if (static_cast<int64_t>(layers.size()) != m.num_layers())
    return "layers with softmax attention grow a KV cache per token (" + std::to_string(layers.size()) + " of " +
           std::to_string(m.num_layers()) + " layers are LAWCAT)";
  for (const auto& [i, layer] : layers) {
    if (layer->options().window > 0)
      return "layer " + std::to_string(i) + " has the softmax window, whose cache grows per token";
    if (layer->options().rope)  // the captured step would keep the capture's position
      return "layer " + std::to_string(i) + " has RoPE on the linear path (positions change per token)";
  }
  return "";
}

struct GraphedGreedyStep::Impl {
#ifdef LAWCAT_HAVE_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;  // made at capture: its constructor talks to the driver
#endif
  std::vector<at::Tensor> warmup_tokens;
  at::Tensor in, out;
  bool fed = false;
};

namespace {
at::Tensor greedy(model::LlamaForCausalLMImpl& m, model::DecodeState& state, const at::Tensor& token) {
  return m.forward(token, state).select(1, 0).argmax(-1).view({1, 1});
}
}  // namespace

GraphedGreedyStep::GraphedGreedyStep(model::LlamaForCausalLMImpl& m, model::DecodeState& state,
                                     const at::Tensor& next, int warmup)
    : impl_(std::make_unique<Impl>()) {
  const std::string why = graph_decode_unsupported(m);
  LAWCAT_CHECK(why.empty(), ConfigError, "CUDA graph decode: " << why);
  LAWCAT_CHECK(next.is_cuda() && next.numel() == 1, ConfigError,
               "CUDA graph decode: the step's token must be one id on the GPU");
#ifdef LAWCAT_HAVE_CUDA
  at::NoGradGuard no_grad;
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
  throw ConfigError("CUDA graph decode: lawcat was built without CUDA");
#endif
}

GraphedGreedyStep::~GraphedGreedyStep() = default;

const std::vector<at::Tensor>& GraphedGreedyStep::warmup_tokens() const { return impl_->warmup_tokens; }

const at::Tensor& GraphedGreedyStep::step() {
#ifdef LAWCAT_HAVE_CUDA
  if (impl_->fed) impl_->in.copy_(impl_->out);
  impl_->graph->replay();
  impl_->fed = true;
#endif
  return impl_->out;
}

}  // namespace lawcat::bench
