// `lawcat convert`: a llama2.c checkpoint (+ its tokenizer.bin) -> a Hugging
// Face model directory (config.json, model.safetensors, tokenizer.bin).
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "io/llama2c_checkpoint.h"
#include "model/model_tokenizer.h"
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
  app.add_option("--out", args->out, "output directory (created, or replaced as a whole once every input is checked)")->required();
  return [args] {
    namespace stdfs = std::filesystem;
    using namespace lawcat;
    if (args->tokenizer.empty())
      log::warn("convert: no --tokenizer given; the output directory will have no tokenizer");
    // Everything is checked before --out is touched: the checkpoint parsed whole, the
    // tokenizer parsed and its vocabulary equal to the model's.
    auto check_tokenizer = [args](const stdfs::path& tokenizer, const io::LlamaConfig& config) {
      with_context("--tokenizer " + tokenizer.string(), [&] {
        auto tok = text::load_llama2c(tokenizer);
        model::check_tokenizer_vocab(tok->vocab_size(), tokenizer, config.vocab_size, args->llama2c);
        LAWCAT_CHECK(tok->vocab_size() == config.vocab_size, DataError,
                     "tokenizer " << tokenizer.string() << " has " << tok->vocab_size()
                                  << " tokens but the model's vocab_size is " << config.vocab_size);
      });
    };
    io::convert_llama2c(args->llama2c, args->tokenizer, args->out, check_tokenizer);
    const auto config = io::load_llama_config(stdfs::path(args->out) / "config.json");
    std::cout << "wrote " << args->out << " (" << config.num_hidden_layers << " layers, hidden "
              << config.hidden_size << ", heads " << config.num_attention_heads << "/"
              << config.num_key_value_heads << ", vocab " << config.vocab_size << ", "
              << (config.tie_word_embeddings ? "tied" : "untied") << " embeddings)\n";
    return 0;
  };
}
LAWCAT_COMMAND("convert", "Convert a llama2.c checkpoint to a Hugging Face model directory", setup_convert);
}  // namespace
