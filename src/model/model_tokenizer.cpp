#include "model/model_tokenizer.h"

#include "util/error.h"

namespace lawcat::model {

void check_tokenizer_vocab(int64_t tokenizer_vocab, const std::filesystem::path& tokenizer_file, int64_t model_vocab,
                           const std::filesystem::path& config_file) {
  LAWCAT_CHECK(tokenizer_vocab <= model_vocab, DataError,
               "tokenizer " << tokenizer_file.string() << " has " << tokenizer_vocab << " tokens, more than the vocab_size "
                            << model_vocab << " of " << config_file.string() << " (ids from " << model_vocab
                            << " on have no embedding): the tokenizer belongs to another model");
  LAWCAT_CHECK(2 * tokenizer_vocab >= model_vocab, DataError,
               "tokenizer " << tokenizer_file.string() << " has " << tokenizer_vocab
                            << " tokens, fewer than half the vocab_size " << model_vocab << " of "
                            << config_file.string() << ": the tokenizer is truncated or belongs to another model");
}

std::unique_ptr<text::Tokenizer> load_model_tokenizer(const std::filesystem::path& model_dir) {
  auto tok = text::load_tokenizer(model_dir);
  const std::filesystem::path config_file = model_dir / "config.json";
  const io::LlamaConfig config = io::load_llama_config(config_file);
  check_tokenizer_vocab(tok->vocab_size(), text::tokenizer_file(model_dir), config.vocab_size, config_file);
  return tok;
}

}  // namespace lawcat::model
