// `lawcat convert`: a llama2.c checkpoint (+ its tokenizer.bin) -> a Hugging
// Face model directory (config.json, model.safetensors, tokenizer.bin).
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "io/llama2c_checkpoint.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/log.h"

namespace {
struct ConvertArgs {
  std::string llama2c, tokenizer, out;
};

lawcat::cli::Runner setup_convert(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  app.add_option("--llama2c", args->llama2c, "llama2.c checkpoint (.bin, legacy or version 1)")
      ->required();
  app.add_option("--tokenizer", args->tokenizer, "llama2.c tokenizer (tokenizer.bin / tok512.bin), copied as tokenizer.bin");
  app.add_option("--out", args->out, "output directory (created)")->required();
  return [args] {
    namespace stdfs = std::filesystem;
    using namespace lawcat;
    if (!args->tokenizer.empty()) {
      LAWCAT_CHECK(stdfs::exists(args->tokenizer), DataError,
                   "tokenizer file " << args->tokenizer << " does not exist");
    } else {
      log::warn("convert: no --tokenizer given; the output directory will have no tokenizer");
    }
    io::convert_llama2c(args->llama2c, args->tokenizer, args->out);
    // The tokenizer must fit the model.
    const auto config = io::load_llama_config(stdfs::path(args->out) / "config.json");
    if (!args->tokenizer.empty()) {
      auto tok = text::load_llama2c(stdfs::path(args->out) / "tokenizer.bin");
      LAWCAT_CHECK(tok->vocab_size() == config.vocab_size, DataError,
                   "tokenizer " << args->tokenizer << " has " << tok->vocab_size()
                                << " tokens but the model's vocab_size is " << config.vocab_size);
    }
    std::cout << "wrote " << args->out << " (" << config.num_hidden_layers << " layers, hidden "
              << config.hidden_size << ", heads " << config.num_attention_heads << "/"
              << config.num_key_value_heads << ", vocab " << config.vocab_size << ", "
              << (config.tie_word_embeddings ? "tied" : "untied") << " embeddings)\n";
    return 0;
  };
}
LAWCAT_COMMAND("convert", "Convert a llama2.c checkpoint to a Hugging Face model directory", setup_convert);
}  // namespace
