// Hidden timing probe ([.bench]): where a training step's time goes on stories260K.
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <iomanip>
#include <iostream>

#include "common/catch.h"
#include "io/llama2c_checkpoint.h"
#include "model/swap.h"
#include "model/llama.h"
#include "model/lora.h"
#include "train/distill.h"
#include "train/finetune.h"
#include "config/yaml.h"
#include "text/tokenizer.h"
#include "util/fs.h"

using namespace lawcat;

TEST_CASE("timing probe: distill and LoRA steps on stories260K", "[.bench]") {
  LAWCAT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  if (std::getenv("BENCH_FTZ")) at::globalContext().setFlushDenormal(true);
  if (const char* t = std::getenv("BENCH_THREADS")) at::set_num_threads(std::atoi(t));
  auto dir = test::scratch_dir("bench");
  io::convert_llama2c(bin, bin.parent_path() / "tok512.bin", dir / "t");
  auto net = model::load_llama(dir / "t", at::kCPU, at::kFloat);
  const int64_t B = std::getenv("BENCH_B") ? std::atoi(std::getenv("BENCH_B")) : 1;
  at::Tensor batch = at::randint(3, 500, {B, 513}, at::kLong);
  auto time = [B](const char* what, int n, const std::function<void()>& fn) {
    fn();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) fn();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / n;
    std::cout << what << ": " << s * 1000 << " ms (" << B * 512 / s << " tok/s)\n";
  };
  for (auto& p : net->parameters()) p.set_requires_grad(true);
  time("teacher fwd+bwd", 5, [&] { train::next_token_loss(*net, batch).backward(); });
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  config::AttentionConfig a;
  model::swap_to_lawcat(*net, a);
  model::set_mixer_mode(*net, model::MixerMode::kDistill);
  {
    at::NoGradGuard ng;
    time("distill fwd (no grad)", 5, [&] { train::attention_transfer_loss(*net, batch, 1000); });
  }
  time("distill fwd+bwd", 5, [&] { train::attention_transfer_loss(*net, batch, 1000).backward(); });
  model::set_mixer_mode(*net, model::MixerMode::kStudent);
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  {
    at::NoGradGuard ng;
    time("student fwd (no grad)", 5, [&] { train::next_token_loss(*net, batch); });
  }
  auto lora = model::apply_lora(*net, {});
  time("lora fwd", 3, [&] { lora->refresh(); train::next_token_loss(*net, batch); });
  time("lora fwd+bwd", 3, [&] { lora->refresh(); train::next_token_loss(*net, batch).backward(); });
  lora->restore();
  for (auto& [n, p] : model::lawcat_parameters(*net)) p.set_requires_grad(true);
  for (auto& [n, p] : lora->parameters()) p.set_requires_grad(false);
  time("student fwd+bwd (lawcat params only)", 3, [&] { train::next_token_loss(*net, batch).backward(); });
}

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
  auto tok = text::load_tokenizer(out / "teacher");
  auto text = fs::read_text(std::filesystem::path(LAWCAT_SOURCE_DIR) / "../shared/data/corpora/tinystories/tinystories_val_tail.txt");
  auto ids = tok->encode(text.substr(0, 20000), true, false);
  at::Tensor batch = at::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + 513)).view({1, 513});
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
  auto tok = text::load_tokenizer(out / "teacher");
  auto text = fs::read_text(std::filesystem::path(LAWCAT_SOURCE_DIR) / "../shared/data/corpora/tinystories/tinystories_val_tail.txt");
  auto ids = tok->encode(text.substr(0, 20000), true, false);
  at::Tensor x = at::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + 512)).view({1, 512});
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
