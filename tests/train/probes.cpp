// Hidden diagnostic probes of a distilled run (PROBE_RUN=<output_dir>): per-layer distillation
// error ([.probe]) and teacher attention patterns ([.attn]); docs/training.md cites their numbers.
// The training-step timing probe that was here is `lawcat bench train-parts` (src/bench).
#include <ATen/Parallel.h>

#include <iomanip>
#include <iostream>

#include "common/catch.h"
#include "model/checkpoint.h"
#include "model/swap.h"
#include "model/llama.h"
#include "config/yaml.h"
#include "text/tokenizer.h"
#include "util/fs.h"

using namespace lawcat;

namespace {

// The first n tokens [1, n] of held-out TinyStories text under the run's teacher tokenizer.
at::Tensor probe_tokens(const std::filesystem::path& run, int64_t n) {
  auto tok = text::load_tokenizer(run / "teacher");
  auto text = fs::read_text(test::shared_data() / "corpora/tinystories/tinystories_val_tail.txt");
  auto ids = tok->encode(text.substr(0, 20000), true, false);
  return at::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + n)).view({1, n});
}

}  // namespace

// Per-layer attention MSE of a distilled run (PROBE_RUN=<output_dir>): where the error is.
TEST_CASE("probe: per-layer distillation error of a run", "[.probe]") {
  const char* run = std::getenv("PROBE_RUN");
  if (!run) LAWCAT_SKIP("set PROBE_RUN");
  at::set_num_threads(1);
  std::filesystem::path out(run);
  auto net = model::load_llama(out / "teacher", at::kCPU, at::kFloat);
  auto cfg = config::load_run_config(out / "config.yaml");
  model::swap_to_lawcat(*net, cfg.attention);
  const char* which = std::getenv("PROBE_WHICH");
  if (!which || std::string(which) != "init") model::load_lawcat_parameters(*net, out / "distill" / "best" / "trainable.safetensors");
  model::set_mixer_mode(*net, model::MixerMode::kDistill);
  at::manual_seed(0);
  const at::Tensor batch = probe_tokens(out, 513);
  at::NoGradGuard ng;
  net->hidden_states(batch.narrow(1, 0, 512));
  for (auto& [i, m] : model::lawcat_layers(*net)) {
    at::Tensor s = m->last_student(), t = m->last_teacher();
    double mse = (s - t).pow(2).mean().item<double>() * 1000;
    double var = t.pow(2).mean().item<double>() * 1000;
    // error by position bucket
    std::cout << "layer " << i << ": MSE x1000 " << mse << ", teacher mean square x1000 " << var << ", relative " << mse / var;
    for (int64_t p0 : {0, 8, 64, 256}) {
      int64_t len = p0 == 0 ? 8 : p0 == 8 ? 56 : p0 == 64 ? 192 : 256;
      std::cout << " | pos " << p0 << "+: " << (s.narrow(1, p0, len) - t.narrow(1, p0, len)).pow(2).mean().item<double>() * 1000;
    }
    std::cout << "\n";
  }
}

// Teacher attention statistics per head (PROBE_RUN=<output_dir>): how local / sharp.
TEST_CASE("probe: teacher attention patterns", "[.attn]") {
  const char* run = std::getenv("PROBE_RUN");
  if (!run) LAWCAT_SKIP("set PROBE_RUN");
  at::set_num_threads(1);
  std::filesystem::path out(run);
  auto net = model::load_llama(out / "teacher", at::kCPU, at::kFloat);
  const at::Tensor x = probe_tokens(out, 512);
  at::NoGradGuard ng;
  at::Tensor h = net->embed(x);
  auto ctx = net->mixer_context(0, 512);
  for (int64_t l = 0; l < net->num_layers(); ++l) {
    auto& layer = net->layer(l);
    auto att = layer->softmax_attention();
    auto [q, k, v] = att->qkv(layer->input_layernorm(h), ctx);  // [1,H,T,D], [1,Hkv,T,D]
    const int64_t H = q.size(1), g = H / k.size(1);
    at::Tensor kk = k.repeat_interleave(g, 1);
    at::Tensor s = at::matmul(q, kk.transpose(-1, -2)) / std::sqrt(double(q.size(-1)));
    at::Tensor mask = at::ones({512, 512}, at::kBool).triu(1);
    at::Tensor p = at::softmax(s.masked_fill(mask, -INFINITY), -1)[0];  // [H,T,T]
    std::cout << "layer " << l << ":";
    for (int64_t hh = 0; hh < H; ++hh) {
      at::Tensor ph = p[hh].narrow(0, 64, 448);  // rows t >= 64
      at::Tensor ent = -(ph * at::log(ph + 1e-12)).sum(-1).mean();
      double self = at::diagonal(p[hh], 0).narrow(0, 64, 448).mean().item<double>();
      double prev = at::diagonal(p[hh], -1).narrow(0, 63, 448).mean().item<double>();
      double first = p[hh].narrow(0, 64, 448).select(1, 0).mean().item<double>();
      std::cout << " h" << hh << "[H=" << std::setprecision(2) << ent.item<double>() << " self " << self << " prev " << prev
                << " bos0 " << first << "]";
    }
    std::cout << "\n";
    h = layer->forward(h, ctx);
  }
}
