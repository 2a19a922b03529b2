// `lawcat ppl`: mean NLL per token of a text file (documents on blank lines).
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "cli/command.h"
#include "model/device.h"
#include "model/swap.h"
#include "eval/perplexity.h"
#include "model/llama.h"
#include "model/model_tokenizer.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace {
struct PplArgs {
  std::string model, text, device = "cpu", dtype = "auto", text_field = "text";
  int64_t ctx = 0;
  bool json = false;
};

lawcat::cli::Runner setup_ppl(CLI::App& app) {
  auto a = std::make_shared<PplArgs>();
  app.add_option("--model", a->model, "model directory (config.json, weights, tokenizer)")->required();
  app.add_option("--text", a->text, "text file (documents separated by blank lines) or a JSONL / compressed corpus (.jsonl, .xz, .gz, .zst); each document scored with BOS")
      ->required();
  app.add_option("--ctx", a->ctx, "window length in tokens (default: the model's max_position_embeddings)")
      ->check(lawcat::cli::at_least(1));
  app.add_option("--text-field", a->text_field, "JSONL: the field holding a document")->capture_default_str();
  app.add_flag("--json", a->json, "print one JSON object on the last line");
  app.add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--dtype", a->dtype, "auto, float32, bfloat16, float16")->capture_default_str();
  return [a] {
    using namespace lawcat;
    // Fail on a missing text file before spending time on the model.
    LAWCAT_CHECK(std::filesystem::is_regular_file(a->text), DataError,
                 "text file " << a->text << " does not exist");
    auto model = model::load_model(a->model, a->device, a->dtype);
    auto tokenizer = model::load_model_tokenizer(a->model);
    eval::PerplexityOptions opt;
    opt.ctx = a->ctx;
    opt.text_field = a->text_field;
    auto r = eval::perplexity_of_file(*model, *tokenizer, a->text, opt);
    // NaN / Inf weights (or an overflow in a low precision) make every score meaningless.
    LAWCAT_CHECK(std::isfinite(r.mean_nll()), DataError,
                 "model " << a->model << ": the mean NLL on " << a->text << " is " << r.mean_nll()
                          << " (not finite) over " << r.tokens << " tokens: the model's weights or activations hold "
                             "NaN or Inf (check the weights; try --dtype float32)");
    std::cout << std::fixed << std::setprecision(4) << "mean NLL " << r.mean_nll() << " nats/token, perplexity "
              << r.perplexity() << " over " << r.tokens << " tokens (" << r.documents << " documents, "
              << r.windows << " windows of <= " << r.ctx << " tokens, " << std::setprecision(1) << r.seconds
              << " s)\n";
    if (a->json) {
      nlohmann::json j = {{"model", a->model},      {"text", a->text},          {"ctx", r.ctx},
                          {"documents", r.documents}, {"windows", r.windows},   {"tokens", r.tokens},
                          {"nll_sum", r.nll_sum},   {"mean_nll", r.mean_nll()}, {"perplexity", r.perplexity()},
                          {"seconds", r.seconds},   {"device", a->device},
                          {"dtype", model::dtype_name(model->dtype())}};
      std::cout << j.dump() << std::endl;
    }
    return 0;
  };
}
LAWCAT_COMMAND("ppl", "Perplexity (mean NLL per token) of a text file", setup_ppl);
}  // namespace
