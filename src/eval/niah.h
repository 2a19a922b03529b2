// RULER single-needle retrieval, S-NIAH-1/2/3 (docs/eval.md, "Formats"):
//
//   | variant  | haystack                                   | key           | value          |
//   | s-niah-1 | noise: kNiahNoise lines joined by "\n"      | adjective-noun | 7-digit number |
//   | s-niah-2 | essay: PaulGrahamEssays.json words, " "     | adjective-noun | 7-digit number |
//   | s-niah-3 | essay                                      | adjective-noun | UUID           |
//
// Needle "One of the special magic {numbers|uuids} for {key} is: {value}."
// Prompt = kNiahTemplate with {type_needle_v}, {context}, {query} filled, then
// kNiahAnswerPrefix. The haystack is measured in words (the unit of the fit):
//   * essay: the first u words of the essays joined by " " (cycled when
//     u exceeds them), split into sentences; the needle goes between sentences
//     at floor(#sentences * depth) and the pieces [before, needle, after] are
//     joined by " " (as RULER's niah.py; an empty piece keeps its space).
//   * noise: u words of kNiahNoise repeated, one repetition per line; the last
//     line may be a partial repetition (whole lines alone are ~25 tokens, too
//     coarse for the 2 % length tolerance at short lengths). The needle is its
//     own line at index floor(#lines * depth); lines joined by "\n".
// u is fitted so that the whole prompt is the largest <= the target in tokens.
// Score (RULER string_match_all): the fraction of reference values that occur,
// case-insensitively, in the output.
//
// RULER rewrites the template to the singular when there is one needle
// ("A special magic number is hidden ..."); the project spec keeps the plural,
// so that is the default here and `singular` opts into RULER's rewrite.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "eval/eval_util.h"
#include "text/tokenizer.h"

namespace lawcat::eval {

inline constexpr const char* kNiahTemplate =
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will "
    "quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic {type_needle_v} for "
    "{query} mentioned in the provided text?";
inline constexpr const char* kNiahAnswerPrefix =
    " The special magic {type_needle_v} for {query} mentioned in the provided text are";
inline constexpr const char* kNiahNeedle = "One of the special magic {type_needle_v} for {key} is: {value}.";
inline constexpr const char* kNiahNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

struct NiahVariant {
  std::string name;       // "s-niah-1"
  std::string haystack;   // "noise" or "essay"
  std::string value_type; // "numbers" or "uuids"
};
// ConfigError for anything but s-niah-1/2/3.
NiahVariant niah_variant(const std::string& name);

// What the variants need from ../shared/data/eval/ruler.
struct NiahData {
  std::vector<std::string> essay_words;  // empty for the noise haystack
  std::vector<std::string> adjectives, nouns;
};
// Reads PaulGrahamEssays.json ({"text": ...}; only for essay variants) and the
// wonderwords adjective / noun lists (one word per line). DataError naming the
// file when one is missing or malformed.
NiahData load_niah_data(const std::filesystem::path& ruler_dir, const NiahVariant& variant);

// "{a}" -> value for each pair, left to right, every occurrence.
std::string fill_template(std::string text, const std::vector<std::pair<std::string, std::string>>& values);

// The haystack context for `words` words with `needle` at `depth` (0..1).
std::string niah_context(const NiahVariant& variant, const NiahData& data, int64_t words, double depth,
                         const std::string& needle);

// A fitted sample (key, value from `seed`). `hint` as in make_passkey_sample.
PromptSample make_niah_sample(const text::Tokenizer& tokenizer, const NiahData& data, const NiahVariant& variant,
                              int64_t target_tokens, double depth, uint64_t seed, int64_t* hint = nullptr,
                              bool singular = false);

// A v4 UUID string (lower-case hex, 8-4-4-4-12) from the generator.
std::string random_uuid(Rng& rng);

// Fraction of `references` found (case-insensitive) in `output`.
double niah_score(const std::string& output, const std::vector<std::string>& references);

}  // namespace lawcat::eval
