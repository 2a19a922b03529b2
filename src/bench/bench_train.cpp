#include "bench/bench_train.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <memory>
#include <sstream>

#include "bench/profile.h"
#include "config/schema.h"
#include "io/hf_config.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/llama.h"
#include "model/lora.h"
#include "model/precision.h"
#include "model/swap.h"
#include "train/distill.h"
#include "train/finetune.h"
#include "util/error.h"
#include "util/format.h"
#include "util/stats.h"

namespace lawcat::bench {
namespace {

// Anchors (docs/training.md, "Throughput"): Llama-3.2-1B shape, B 8 x T 1024, bf16, H100
// (tokens/s), and the targets.
const char* reference_of(const std::string& mode) {
  if (mode == "teacher-fwd") return "HF fwd 168K";
  if (mode == "full") return "HF fwd+bwd 50K";
  if (mode == "distill") return "Python 50K; target >= 100K";
  if (mode == "lora") return "target >= 45K";
  return "";
}

// One mode's model: random weights (seed 0, N(0, 0.02)) on the device in the frozen dtype,
// what the mode trains, and its optimizer (none for teacher-fwd).
struct ModeModel {
  model::LlamaForCausalLM net{nullptr};
  std::vector<at::Tensor> trainable;
  std::shared_ptr<model::LoraAdapters> lora;
  std::unique_ptr<torch::optim::AdamW> opt;
};

ModeModel build_mode_model(const std::string& mode, const io::LlamaConfig& cfg, at::Device device,
                           at::ScalarType dtype) {
  ModeModel m;
  at::manual_seed(0);
  m.net = model::build_llama(cfg);
  {
    at::NoGradGuard g;
    for (auto& p : m.net->parameters()) p.normal_(0.0, 0.02);
  }
  m.net->to(device, dtype);
  if (mode == "full") {
    for (auto& p : m.net->parameters()) m.trainable.push_back(p);
  } else if (mode == "distill" || mode == "lora") {
    model::swap_to_lawcat(*m.net, config::AttentionConfig{});
    if (mode == "distill") {
      model::set_mixer_mode(*m.net, model::MixerMode::kDistill);
      for (auto& [n, p] : model::lawcat_parameters(*m.net)) m.trainable.push_back(p);
    } else {
      for (auto& p : m.net->parameters()) p.set_requires_grad(false);
      model::LoraOptions lo;
      m.lora = model::apply_lora(*m.net, lo);
      for (auto& [n, p] : m.lora->parameters()) {
        p.set_requires_grad(true);
        m.trainable.push_back(p);
      }
    }
  } else {
    for (auto& p : m.net->parameters()) p.set_requires_grad(false);
  }
  if (!m.trainable.empty())
    m.opt = std::make_unique<torch::optim::AdamW>(m.trainable, torch::optim::AdamWOptions(1e-4).weight_decay(0.0));
  return m;
}

// One step of `mode` on fresh random tokens [B, T + 1]; returns the loss (a host read: a sync).
float train_step(ModeModel& m, const std::string& mode, const BenchTrainOptions& o, int64_t vocab_size,
                 at::Device device) {
  at::Tensor batch = at::randint(3, vocab_size, {o.batch, o.seq + 1}, at::TensorOptions().dtype(at::kLong).device(device));
  if (mode == "teacher-fwd") {
    at::NoGradGuard g;
    at::Tensor logits = m.net->forward(batch.narrow(1, 0, o.seq));
    return logits.select(1, o.seq - 1).sum().item<float>();
  }
  m.opt->zero_grad();
  at::Tensor loss;
  if (mode == "distill") {
    loss = train::attention_transfer_loss(*m.net, batch, 1000.0);
  } else {
    if (m.lora) m.lora->refresh();
    loss = train::next_token_loss(*m.net, batch);
  }
  loss.backward();
  m.opt->step();
  return loss.item<float>();
}

BenchTrainRow time_mode(const std::string& mode, const BenchTrainOptions& o, const io::LlamaConfig& cfg,
                        at::Device device, at::ScalarType dtype) {
  ModeModel m = build_mode_model(mode, cfg, device, dtype);
  auto step = [&] { return train_step(m, mode, o, cfg.vocab_size, device); };
  for (int64_t i = 0; i < o.warmup; ++i) step();
  std::vector<double> ms_per;
  for (int64_t i = 0; i < o.steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    float l = step();
    ms_per.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    LAWCAT_CHECK(std::isfinite(l), Error, "bench train: non-finite loss in mode " << mode);
  }
  BenchTrainRow row;
  row.mode = mode;
  row.step_ms_median = stats::median(ms_per);
  row.tokens_per_s = o.batch * o.seq / (row.step_ms_median / 1000.0);
  for (auto& t : m.trainable) row.trainable_params += t.numel();
  if (o.profile) {
    ProfileOptions po;
    if (!o.profile_traces.empty()) po.trace_path = o.profile_traces + "/train_" + mode + ".json";
    row.profile = "profile " + mode + ": one step\n" + profile_region([&] { step(); }, po);
  }
  return row;
}

}  // namespace

std::vector<BenchTrainRow> bench_train(const BenchTrainOptions& o,
                                       const std::function<void(const std::string&)>& print) {
  io::LlamaConfig cfg = io::load_llama_config(o.config);
  at::Device device = model::parse_device(o.device);
  model::use_tf32_on_cuda(device);  // as `lawcat distill` does
  at::ScalarType dtype =
      model::parse_dtype(o.dtype == "bf16" ? "bfloat16" : o.dtype == "fp16" ? "float16" : "float32");
  std::ostringstream head;
  head << "model " << o.config << ", B " << o.batch << " x T " << o.seq << ", " << o.dtype << " on " << o.device
       << "\n"
       << std::left << std::setw(12) << "mode" << std::right << " " << std::setw(12) << "step ms" << " "
       << std::setw(12) << "tokens/s" << "  reference (tokens/s)\n";
  print(head.str());
  std::vector<BenchTrainRow> rows;
  std::stringstream ms(o.modes);
  for (std::string mode; std::getline(ms, mode, ',');) {
    LAWCAT_CHECK(mode == "teacher-fwd" || mode == "full" || mode == "distill" || mode == "lora", ConfigError,
                 "--modes: unknown mode '" << mode << "'");
    rows.push_back(time_mode(mode, o, cfg, device, dtype));
    const auto& r = rows.back();
    std::ostringstream line;
    line << std::left << std::setw(12) << mode << std::right << " " << std::setw(12)
         << format::fixed(r.step_ms_median, 2) << " " << std::setw(12) << format::fixed(r.tokens_per_s, 0) << "  "
         << reference_of(mode) << "\n";
    print(line.str());
  }
  return rows;
}

nlohmann::json bench_train_json(const BenchTrainOptions& o, const std::vector<BenchTrainRow>& rows) {
  nlohmann::json out = {{"config", o.config}, {"device", o.device}, {"dtype", o.dtype},
                        {"batch", o.batch}, {"seq", o.seq}, {"results", nlohmann::json::array()}};
  for (const auto& r : rows)
    out["results"].push_back({{"mode", r.mode}, {"step_ms_median", r.step_ms_median},
                              {"tokens_per_s", r.tokens_per_s}, {"trainable_params", r.trainable_params}});
  return out;
}

void bench_train_parts(const BenchTrainPartsOptions& o, const std::function<void(const std::string&)>& print) {
  if (o.flush_denormal) at::globalContext().setFlushDenormal(true);
  if (o.threads > 0) at::set_num_threads(o.threads);
  auto net = model::load_llama(o.model_dir, at::kCPU, at::kFloat);
  const int64_t B = o.batch, T = o.seq;
  at::Tensor batch = at::randint(3, net->vocab_size(), {B, T + 1}, at::kLong);
  // One untimed call, then the mean of n.
  auto time = [&](const char* what, int n, const std::function<void()>& fn) {
    fn();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) fn();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / n;
    std::ostringstream os;
    os << what << ": " << s * 1000 << " ms (" << B * T / s << " tok/s)\n";
    print(os.str());
  };
  for (auto& p : net->parameters()) p.set_requires_grad(true);
  time("teacher fwd+bwd", 5, [&] { train::next_token_loss(*net, batch).backward(); });
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  model::swap_to_lawcat(*net, config::AttentionConfig{});
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

}  // namespace lawcat::bench
