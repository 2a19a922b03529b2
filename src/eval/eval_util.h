// Shared pieces of the long-context evals (passkey, S-NIAH, BABILong):
//   * Rng: a seeded splitmix64 generator whose draws are the same on every
//     platform (std::uniform_int_distribution is implementation-defined), so a
//     (seed, cell, sample) names one prompt forever and a resumed run rebuilds it.
//   * fit_units: the largest haystack size (characters, words) whose prompt is at
//     most `target` tokens of the model's tokenizer: a galloping + binary search,
//     each probe one encode of the whole prompt.
//   * PromptSample: one generated prompt with its references and metadata.
//   * text helpers: whitespace words, a sentence splitter, lower-casing.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"

namespace lawcat::eval {

// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for prompts.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform integer in [lo, hi] (inclusive), by rejection (no modulo bias).
  int64_t uniform_int(int64_t lo, int64_t hi);
  // Uniform double in [0, 1).
  double uniform();

 private:
  uint64_t state_;
};

// A seed that depends on every coordinate of a sample, so each prompt can be
// rebuilt on its own (resume, reruns with more samples) in any order.
uint64_t sample_seed(uint64_t seed, const std::string& task, int64_t length, int64_t depth, int64_t sample);

// One generated prompt.
struct PromptSample {
  std::string prompt;                   // the full text given to the model
  std::vector<int64_t> ids;             // its tokens (BOS first when the tokenizer adds one)
  std::vector<std::string> references;  // what the answer must contain
  int64_t target_tokens = 0;            // requested length (prompt or context, see `length_of`)
  int64_t measured_tokens = 0;          // what was measured against target_tokens
  std::string length_of = "prompt";     // "prompt" (passkey, S-NIAH) or "context" (BABILong)
  int64_t needle_offset = -1;           // byte offset of the (first) needle in `prompt`, -1 if none
  nlohmann::json meta = nlohmann::json::object();
};

// Tokens of `text` as the model would see it as a prompt: BOS first when the
// tokenizer adds one by default.
std::vector<int64_t> encode_prompt(const text::Tokenizer& tokenizer, const std::string& text);

// Result of fit_units: the chosen size and the token count it gives.
struct FitResult {
  int64_t units = 0;
  int64_t tokens = 0;
  int64_t probes = 0;  // how many times tokens_for was called
};

// Largest u in [0, max_units] with tokens_for(u) <= target (tokens_for is
// assumed non-decreasing, as prompt length is in haystack size). `hint` (> 0)
// starts the search near a previous answer (e.g. the last sample of the same
// cell); otherwise the rate is estimated from a small probe. When even
// tokens_for(0) > target, returns units 0 with its token count (the caller
// decides whether that is an error).
FitResult fit_units(const std::function<int64_t(int64_t)>& tokens_for, int64_t target, int64_t max_units,
                    int64_t hint = 0);

// Whether `got` is within `tolerance` (a fraction) of `target`.
inline bool within_tolerance(int64_t got, int64_t target, double tolerance = 0.02) {
  const double diff = static_cast<double>(got > target ? got - target : target - got);
  return diff <= tolerance * static_cast<double>(target);
}

// Text helpers.
std::vector<std::string> split_whitespace(std::string_view text);
std::string collapse_whitespace(std::string_view text);  // runs of whitespace -> one space, trimmed
std::string to_lower(std::string_view text);             // ASCII lower-case
std::string trim(std::string_view text);
// Sentences of whitespace-collapsed text: a sentence ends at '.', '!' or '?'
// (plus closing quotes / brackets) followed by a space and an upper-case
// letter, a digit or an opening quote. (RULER and BABILong use nltk's punkt;
// this is a dependency-free approximation with the same role: boundaries at
// which needles and facts are inserted.)
std::vector<std::string> split_sentences(std::string_view text);
// Number of non-overlapping occurrences of `needle` in `text`.
int64_t count_occurrences(std::string_view text, std::string_view needle);

// A data file that must exist: DataError naming it (and what it is for) otherwise.
void require_data_file(const std::filesystem::path& file, const std::string& what);

}  // namespace lawcat::eval
