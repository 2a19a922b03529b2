// `lawcat generate`: stream a continuation of a prompt (or of BOS) to stdout; or, with
// --prompts FILE (one prompt per line), continue every prompt, --batch-size at a time
// (left-padded batches, eval/generate.h's generate_batch), one JSON line per prompt.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "model/swap.h"
#include "eval/generate.h"
#include "model/llama.h"
#include "model/model_tokenizer.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "util/error.h"
#include "util/log.h"

namespace {
struct GenerateArgs {
  std::string model, prompt, prompts, device = "cpu", dtype = "auto";
  int64_t max_new_tokens = 256, batch_size = 1;
  bool greedy = false;
  double temperature = 1.0, top_p = 0.9;
  uint64_t seed = 0;
};

// --prompts: every line a prompt, decoded --batch-size at a time; one JSON line per prompt
// ({"index", "prompt", "output", "new_tokens", "stop_reason"}) in the file's order.
int generate_file(const GenerateArgs& a, lawcat::model::LlamaForCausalLMImpl& model,
                  const lawcat::text::Tokenizer& tokenizer, lawcat::eval::GenerateOptions opt) {
  using namespace lawcat;
  std::ifstream in(a.prompts);
  LAWCAT_CHECK(in, DataError, "generate: cannot read " << a.prompts);
  std::vector<std::string> prompts;
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    LAWCAT_CHECK(text::unicode::is_valid_utf8(line), DataError,
                 "generate: " << a.prompts << ":" << line_no << ": not valid UTF-8 text");
    if (line.find_first_not_of(" \t") != std::string::npos) prompts.push_back(line);
  }
  LAWCAT_CHECK(!prompts.empty(), DataError, "generate: " << a.prompts << " has no prompts (one per line)");
  opt.stop_ids = eval::default_stop_ids(model, tokenizer);
  int64_t tokens = 0;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(a.batch_size)) {
    const size_t last = std::min(prompts.size(), first + static_cast<size_t>(a.batch_size));
    std::vector<std::vector<int64_t>> ids;
    for (size_t i = first; i < last; ++i) ids.push_back(eval::prompt_ids_for(model, tokenizer, prompts[i]));
    const auto results = eval::generate_batch(model, ids, opt);
    for (size_t i = first; i < last; ++i) {
      const auto& r = results[i - first];
      std::string text;
      int64_t prev = r.prompt_ids.back();
      for (int64_t id : r.new_ids) {
        if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) == opt.stop_ids.end())
          text += tokenizer.decode_piece(prev, id);
        prev = id;
      }
      tokens += static_cast<int64_t>(r.new_ids.size());
      std::cout << nlohmann::json({{"index", i}, {"prompt", prompts[i]}, {"output", text},
                                   {"new_tokens", r.new_ids.size()}, {"stop_reason", r.stop_reason}})
                       // a continuation can end inside a multi-byte character (or a sampled
                       // byte token can be a stray continuation byte): U+FFFD, as tokenizers do
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << std::endl;
    }
  }
  log::info("generated ", tokens, " tokens for ", prompts.size(), " prompts, batches of ", a.batch_size);
  return 0;
}

lawcat::cli::Runner setup_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  app.add_option("--model", a->model, "model directory (config.json, weights, tokenizer)")->required();
  app.add_option("--prompt", a->prompt, "prompt text (empty: start from BOS alone)");
  app.add_option("--prompts", a->prompts,
                 "file of prompts, one per line (blank lines skipped); prints one JSON line per prompt")
      ->check(CLI::ExistingFile)->excludes("--prompt");
  app.add_option("--batch-size", a->batch_size, "with --prompts: prompts decoded together (left-padded)")
      ->capture_default_str()->needs("--prompts")->check(lawcat::cli::at_least(1));
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
    if (!a->prompts.empty()) return generate_file(*a, *model, *tokenizer, opt);
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
