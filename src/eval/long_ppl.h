// Perplexity at several context lengths (the `ppl` eval task).
//
// The text file is tokenized as ONE stream (no blank-line document split unless
// asked), optionally cut to its first `max_tokens` tokens, and cut into
// consecutive chunks of `ctx` tokens; each chunk is scored as its own document
// with BOS prepended (eval/perplexity.h score_documents), so every token of the
// stream is predicted exactly once at every ctx, from at most ctx tokens of
// context. Comparing ctx = 512, 1K, ..., 16K on one model therefore compares the
// same predictions with more and more context; beyond the distillation length
// (1K in the paper) this shows whether a LAWCAT student keeps using it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "eval/perplexity.h"
#include "model/llama.h"
#include "text/tokenizer.h"

namespace lawcat::eval {

struct LongPplOptions {
  int64_t max_tokens = 0;   // 0 = the whole file
  bool documents = false;   // split on blank lines first (each document chunked on its own)
  bool progress = false;
  std::string text_field = "text";  // JSONL: the field holding a document
};

// Whether `file` is read as plain text (blank-line documents); JSONL, Alpaca JSON and
// compressed files (.xz, .gz, .zst) go through the dataset's corpus reader instead.
bool is_plain_text_file(const std::filesystem::path& file);

// The token streams of `text_file` (JSONL / compressed: one stream per document) (one, or one per document), without BOS.
// DataError naming the file when it is missing or has no text.
std::vector<std::vector<int64_t>> tokenize_for_long_ppl(const text::Tokenizer& tokenizer,
                                                         const std::filesystem::path& text_file,
                                                         const LongPplOptions& options);

// Scores `streams` in chunks of `ctx` tokens, each with `bos` first.
PerplexityResult long_ppl(model::LlamaForCausalLMImpl& model, const std::vector<std::vector<int64_t>>& streams,
                          int64_t ctx, int64_t bos, bool progress = false);

}  // namespace lawcat::eval
