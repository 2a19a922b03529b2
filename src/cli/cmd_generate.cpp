// `lawcat generate`: stream a continuation of a prompt (or of BOS) to stdout.
#include <iostream>

#include "cli/command.h"
#include "model/swap.h"
#include "eval/generate.h"
#include "model/llama.h"
#include "model/model_tokenizer.h"
#include "text/tokenizer.h"
#include "util/log.h"

namespace {
struct GenerateArgs {
  std::string model, prompt, device = "cpu", dtype = "auto";
  int64_t max_new_tokens = 256;
  bool greedy = false;
  double temperature = 1.0, top_p = 0.9;
  uint64_t seed = 0;
};

lawcat::cli::Runner setup_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  app.add_option("--model", a->model, "model directory (config.json, weights, tokenizer)")->required();
  app.add_option("--prompt", a->prompt, "prompt text (empty: start from BOS alone)");
  app.add_option("--max-new-tokens", a->max_new_tokens, "tokens to generate at most")
      ->capture_default_str()->check(lawcat::cli::at_least(1));
  app.add_flag("--greedy", a->greedy, "argmax decoding (same as --temperature 0)");
  app.add_option("--temperature", a->temperature, "sampling temperature (0 = greedy)")
      ->capture_default_str()->check(lawcat::cli::at_least(0));
  app.add_option("--top-p", a->top_p, "nucleus sampling mass in (0, 1]")->capture_default_str()->check(lawcat::cli::in_range_open_closed(0, 1));
  app.add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  app.add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--dtype", a->dtype, "auto, float32, bfloat16, float16 (auto: fp32 on CPU, the checkpoint's dtype on CUDA)")
      ->capture_default_str();
  return [a] {
    using namespace lawcat;
    auto model = model::load_model(a->model, a->device, a->dtype);
    auto tokenizer = model::load_model_tokenizer(a->model);
    eval::GenerateOptions opt;
    opt.max_new_tokens = a->max_new_tokens;
    opt.sampling.greedy = a->greedy || a->temperature == 0;
    opt.sampling.temperature = a->temperature;
    opt.sampling.top_p = a->top_p;
    opt.sampling.seed = a->seed;
    std::cout << a->prompt << std::flush;
    auto r = eval::generate_text(*model, *tokenizer, a->prompt, opt, [](const std::string& piece) {
      std::cout << piece << std::flush;
    });
    std::cout << std::endl;
    const double tok_s = r.decode_seconds > 0 ? (r.new_ids.size() - 1) / r.decode_seconds : 0.0;
    log::info("generated ", r.new_ids.size(), " tokens (", r.stop_reason, "); prompt ", r.prompt_ids.size(),
              " tokens in ", r.prefill_seconds, " s; ", tok_s, " tok/s; decode state ",
              r.state_bytes / 1024.0, " KiB");
    return 0;
  };
}
LAWCAT_COMMAND("generate", "Generate text from a model (streams to stdout)", setup_generate);
}  // namespace
