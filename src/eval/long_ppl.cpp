#include "eval/long_ppl.h"

#include <algorithm>

#include "dataset/corpus.h"
#include "util/error.h"
#include "util/fs.h"

namespace lawcat::eval {

bool is_plain_text_file(const std::filesystem::path& file) {
  const std::string ext = file.extension().string();
  return ext != ".jsonl" && ext != ".json" && ext != ".xz" && ext != ".gz" && ext != ".zst";
}

std::vector<std::vector<int64_t>> tokenize_for_long_ppl(const text::Tokenizer& tokenizer,
                                                         const std::filesystem::path& text_file,
                                                         const LongPplOptions& options) {
  LAWCAT_CHECK(std::filesystem::is_regular_file(text_file), DataError,
               text_file.string() << ": text file for the ppl task not found");
  std::vector<std::string> pieces;
  if (!is_plain_text_file(text_file)) {
    dataset::CorpusOptions co;  // JSONL, Alpaca, compressed
    co.text_field = options.text_field;
    pieces = dataset::read_documents(text_file, co);
  } else if (const std::string text = dataset::read_text_checked(text_file); options.documents) {
    pieces = split_documents(text);
  } else if (text.find_first_not_of(" \t\r\n\f\v") != std::string::npos) {
    pieces.push_back(text);
  }
  LAWCAT_CHECK(!pieces.empty(), DataError, text_file.string() << ": the text file has no text");
  std::vector<std::vector<int64_t>> streams;
  int64_t total = 0;
  for (const auto& p : pieces) {
    if (options.max_tokens > 0 && total >= options.max_tokens) break;
    std::vector<int64_t> ids = tokenizer.encode(p, /*add_bos=*/false);
    if (options.max_tokens > 0 && total + static_cast<int64_t>(ids.size()) > options.max_tokens)
      ids.resize(static_cast<size_t>(options.max_tokens - total));
    total += static_cast<int64_t>(ids.size());
    if (!ids.empty()) streams.push_back(std::move(ids));
  }
  LAWCAT_CHECK(!streams.empty(), DataError, text_file.string() << ": the text tokenizes to nothing");
  return streams;
}

PerplexityResult long_ppl(model::LlamaForCausalLMImpl& model, const std::vector<std::vector<int64_t>>& streams,
                          int64_t ctx, int64_t bos, bool progress) {
  LAWCAT_CHECK(ctx > 1, ConfigError, "ppl: context length must be > 1, got " << ctx);
  LAWCAT_CHECK(bos >= 0, DataError,
               "ppl: the model has no BOS or EOS token (tokenizer or config.json) to start windows with");
  // Chunks of ctx tokens with BOS first: documents of ctx + 1 ids, one window each.
  std::vector<std::vector<int64_t>> docs;
  for (const auto& s : streams) {
    for (size_t b = 0; b < s.size(); b += static_cast<size_t>(ctx)) {
      const size_t e = std::min(s.size(), b + static_cast<size_t>(ctx));
      std::vector<int64_t> d;
      d.reserve(e - b + 1);
      d.push_back(bos);
      d.insert(d.end(), s.begin() + static_cast<std::ptrdiff_t>(b), s.begin() + static_cast<std::ptrdiff_t>(e));
      docs.push_back(std::move(d));
    }
  }
  PerplexityOptions o;
  o.ctx = ctx;
  o.progress = progress;
  PerplexityResult r = score_documents(model, docs, o);
  r.ctx = ctx;
  return r;
}

}  // namespace lawcat::eval
