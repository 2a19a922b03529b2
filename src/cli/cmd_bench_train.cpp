// `lawcat bench train`: training-step throughput (tokens/s) for a model shape
// from a config.json with random weights, same run for every mode:
//   teacher-fwd   the softmax teacher's forward alone (no grad)
//   full          the teacher's full forward + backward (all parameters)
//   distill       stage 1: teacher + LAWCAT outputs per layer, MSE × 1000,
//                 AdamW step on the LAWCAT parameters only
//   lora          stage 2: LoRA (r 8) on q/k/v/o of the LAWCAT model, CE, AdamW step
// Each step is fwd + bwd + optimizer over B × T tokens; the step ends with a
// host read of the loss (a device sync). Warm-up steps, then the median of
// --steps timed steps; fresh random tokens every step. Frozen weights are in
// --dtype (bf16 by default; `full` trains them in that dtype too, as the HF
// anchor does), LAWCAT and LoRA parameters and their AdamW state in fp32.
// The reference column is the HF / Python stage-1 anchor in docs/training.md,
// "Throughput" (same H100, same shape).
// --profile prints a kernel profile (bench/profile.h) of one more step per mode.
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "config/schema.h"
#include "bench/profile.h"
#include "io/hf_config.h"
#include "model/swap.h"
#include "model/llama.h"
#include "model/lora.h"
#include "train/distill.h"
#include "train/finetune.h"
#include "model/precision.h"
#include "util/error.h"
#include "util/log.h"

namespace {
using namespace lawcat;

struct Args {
  std::string config, device = "cuda", dtype = "bf16", modes = "teacher-fwd,full,distill,lora", json;
  int64_t batch = 8, seq = 1024, steps = 10, warmup = 3;
  bool profile = false;
  std::string profile_traces;
};

// Anchors (docs/training.md, "Throughput"): Llama-3.2-1B shape, B 8 x T 1024, bf16, H100
// (tokens/s), and the targets.
const char* reference_of(const std::string& mode) {
  if (mode == "teacher-fwd") return "HF fwd 168K";
  if (mode == "full") return "HF fwd+bwd 50K";
  if (mode == "distill") return "Python 50K; target >= 100K";
  if (mode == "lora") return "target >= 45K";
  return "";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

lawcat::cli::Runner setup_bench_train(CLI::App& app) {
  auto a = std::make_shared<Args>();
  app.add_option("--config", a->config, "config.json of the model shape (random weights)")->required();
  app.add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  app.add_option("--dtype", a->dtype, "frozen weights: bf16, fp16, fp32")->capture_default_str();
  app.add_option("--modes", a->modes, "comma list of teacher-fwd, full, distill, lora")->capture_default_str();
  app.add_option("--batch", a->batch, "sequences per step")->capture_default_str();
  app.add_option("--seq", a->seq, "tokens per sequence")->capture_default_str();
  app.add_option("--steps", a->steps, "timed steps (median reported)")->capture_default_str();
  app.add_option("--warmup", a->warmup, "untimed steps first")->capture_default_str();
  app.add_option("--json", a->json, "write the numbers to this file");
  app.add_flag("--profile", a->profile, "print a kernel profile of one more step per mode");
  app.add_option("--profile-traces", a->profile_traces, "write Chrome traces of the profiled steps into this folder");
  return [a] {
    io::LlamaConfig cfg = io::load_llama_config(a->config);
    at::Device device = model::parse_device(a->device);
    model::use_tf32_on_cuda(device);  // as `lawcat distill` does
    at::ScalarType dtype = model::parse_dtype(a->dtype == "bf16" ? "bfloat16" : a->dtype == "fp16" ? "float16" : "float32");
    nlohmann::json out = {{"config", a->config}, {"device", a->device}, {"dtype", a->dtype},
                          {"batch", a->batch}, {"seq", a->seq}, {"results", nlohmann::json::array()}};
    std::stringstream ms(a->modes);
    std::printf("model %s, B %lld x T %lld, %s on %s\n", a->config.c_str(), static_cast<long long>(a->batch),
                static_cast<long long>(a->seq), a->dtype.c_str(), a->device.c_str());
    std::printf("%-12s %12s %12s  %s\n", "mode", "step ms", "tokens/s", "reference (tokens/s)");
    std::string profiles;
    for (std::string mode; std::getline(ms, mode, ',');) {
      LAWCAT_CHECK(mode == "teacher-fwd" || mode == "full" || mode == "distill" || mode == "lora", ConfigError,
                   "--modes: unknown mode '" << mode << "'");
      at::manual_seed(0);
      model::LlamaForCausalLM net = model::build_llama(cfg);
      {
        at::NoGradGuard g;
        for (auto& p : net->parameters()) p.normal_(0.0, 0.02);
      }
      net->to(device, dtype);
      std::vector<at::Tensor> trainable;
      std::shared_ptr<model::LoraAdapters> lora;
      if (mode == "full") {
        for (auto& p : net->parameters()) trainable.push_back(p);
      } else if (mode == "distill" || mode == "lora") {
        model::swap_to_lawcat(*net, config::AttentionConfig{});
        if (mode == "distill") {
          model::set_mixer_mode(*net, model::MixerMode::kDistill);
          for (auto& [n, p] : model::lawcat_parameters(*net)) trainable.push_back(p);
        } else {
          for (auto& p : net->parameters()) p.set_requires_grad(false);
          model::LoraOptions lo;
          lora = model::apply_lora(*net, lo);
          for (auto& [n, p] : lora->parameters()) {
            p.set_requires_grad(true);
            trainable.push_back(p);
          }
        }
      } else {
        for (auto& p : net->parameters()) p.set_requires_grad(false);
      }
      std::unique_ptr<torch::optim::AdamW> opt;
      if (!trainable.empty())
        opt = std::make_unique<torch::optim::AdamW>(trainable, torch::optim::AdamWOptions(1e-4).weight_decay(0.0));
      auto step = [&]() -> float {
        at::Tensor batch = at::randint(3, cfg.vocab_size, {a->batch, a->seq + 1}, at::TensorOptions().dtype(at::kLong).device(device));
        if (mode == "teacher-fwd") {
          at::NoGradGuard g;
          at::Tensor logits = net->forward(batch.narrow(1, 0, a->seq));
          return logits.select(1, a->seq - 1).sum().item<float>();
        }
        opt->zero_grad();
        at::Tensor loss;
        if (mode == "distill") {
          loss = train::attention_transfer_loss(*net, batch, 1000.0);
        } else {
          if (lora) lora->refresh();
          loss = train::next_token_loss(*net, batch);
        }
        loss.backward();
        opt->step();
        return loss.item<float>();
      };
      for (int64_t i = 0; i < a->warmup; ++i) step();
      std::vector<double> ms_per;
      for (int64_t i = 0; i < a->steps; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        float l = step();
        ms_per.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        LAWCAT_CHECK(std::isfinite(l), Error, "bench train: non-finite loss in mode " << mode);
      }
      double m = median(ms_per);
      double tps = a->batch * a->seq / (m / 1000.0);
      std::printf("%-12s %12.2f %12.0f  %s\n", mode.c_str(), m, tps, reference_of(mode));
      if (a->profile) {
        bench::ProfileOptions po;
        if (!a->profile_traces.empty()) po.trace_path = a->profile_traces + "/train_" + mode + ".json";
        profiles += "profile " + mode + ": one step\n" + bench::profile_region([&] { step(); }, po);
      }
      out["results"].push_back({{"mode", mode}, {"step_ms_median", m}, {"tokens_per_s", tps},
                                {"trainable_params", [&] { int64_t n = 0; for (auto& t : trainable) n += t.numel(); return n; }()}});
      std::fflush(stdout);
    }
    std::printf("%s", profiles.c_str());
    if (!a->json.empty()) {
      std::ofstream f(a->json);
      f << out.dump(2) << "\n";
    }
    return 0;
  };
}
LAWCAT_COMMAND("bench train", "Training-step throughput (teacher fwd, full, distill, LoRA) on random weights from a config.json",
               setup_bench_train);
}  // namespace
