// Perplexity of a text file: documents separated by blank lines, each
// prefixed with BOS, scored in non-overlapping windows of `ctx` input tokens.
//
// A document x[0..n-1] (x[0] = BOS) is cut into windows starting at
// s = 0, ctx, 2ctx, ...: inputs x[s .. s+len), targets x[s+1 .. s+len],
// len = min(ctx, n-1-s). Windows are scored independently (no state carried
// over), so every token after BOS is predicted exactly once and sees at most
// ctx tokens of context. Result: mean NLL (nats/token) over those n-1 tokens
// summed over documents, and exp(mean NLL).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/llama.h"
#include "text/tokenizer.h"

namespace lawcat::eval {

struct PerplexityOptions {
  int64_t ctx = 0;             // window length in tokens; 0 = the model's max_position_embeddings
  int64_t logits_chunk = 512;  // positions turned into fp32 logits at a time (bounds memory)
  bool progress = true;        // progress bar on stderr
  std::string text_field = "text";  // JSONL: the field holding a document
};

struct PerplexityResult {
  double nll_sum = 0;      // nats
  int64_t tokens = 0;      // predicted tokens
  int64_t documents = 0;
  int64_t windows = 0;
  int64_t ctx = 0;
  double seconds = 0;
  double mean_nll() const { return tokens ? nll_sum / static_cast<double>(tokens) : 0.0; }
  double perplexity() const;
};

// Splits on blank (empty or whitespace-only) lines; trims each document;
// drops empty ones.
std::vector<std::string> split_documents(const std::string& text);

// Scores already tokenized documents (each should start with BOS).
PerplexityResult score_documents(model::LlamaForCausalLMImpl& model,
                                 const std::vector<std::vector<int64_t>>& documents,
                                 const PerplexityOptions& options);

// Reads `text_file` (DataError when missing or without any document),
// tokenizes each document with BOS, scores.
PerplexityResult perplexity_of_file(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer,
                                    const std::filesystem::path& text_file, const PerplexityOptions& options);

}  // namespace lawcat::eval
