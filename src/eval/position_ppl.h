// Long-document perplexity by position (PG-19 style): does a model keep using
// context far beyond its training length? Each document with at least `length`
// tokens is scored ONCE over its first `length` tokens (BOS first, one forward
// pass, no windows), and the NLL of every predicted token goes to the bucket of
// its position (bucket k holds positions [k * bucket, (k + 1) * bucket)). A model
// that keeps using context shows NLL falling (or flat) with position; one that
// breaks past its training length shows it rising there.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "model/llama.h"
#include "text/tokenizer.h"

namespace lawcat::eval {

// Mean NLL (nats) per position bucket of one document.
struct PositionNll {
  std::vector<double> nll_sum;   // per bucket
  std::vector<int64_t> tokens;   // per bucket (predicted tokens)
  double seconds = 0;
  double mean(size_t bucket) const { return tokens[bucket] ? nll_sum[bucket] / static_cast<double>(tokens[bucket]) : 0; }
};

// ids: BOS first, length >= 2. Predicts ids[1..n-1] from one pass over ids[0..n-2];
// the target at position p (1-based in ids) goes to bucket (p - 1) / bucket.
PositionNll position_nll(model::LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids, int64_t bucket,
                         int64_t logits_chunk = 512);

// The documents of `text_file` (any corpus format the dataset reader takes: text,
// JSONL, compressed) that have at least `length` tokens, each cut to BOS + its first
// length - 1 tokens, in file order, at most `max_documents` (0 = all). DataError
// naming the file when none is long enough.
std::vector<std::vector<int64_t>> long_documents(const text::Tokenizer& tokenizer,
                                                 const std::filesystem::path& text_file, int64_t length,
                                                 int64_t bos, int64_t max_documents,
                                                 const std::string& text_field = "text");

}  // namespace lawcat::eval
