// Passkey retrieval in the landmark-attention / LongLoRA format
// (docs/eval.md, "Formats"). The prompt is five parts joined by "\n":
//
//   kPasskeyTask
//   garbage prefix   (the first round(depth * n) characters of the garbage stream)
//   "The pass key is {key}. Remember it. {key} is the pass key."
//   garbage suffix   (the first n - round(depth * n) characters of the garbage stream)
//   kPasskeyQuestion
//
// The garbage stream is kPasskeyGarbage repeated, joined by single spaces; both
// the prefix and the suffix are cut from its start, as LongLoRA's
// passkey_retrivial.py does. n (total garbage characters) is fitted so that the
// prompt, tokenized by the model's tokenizer (BOS included when it adds one), is
// the largest that is at most the target length; it must land within 2 % of it.
// key = uniform integer in [1, 50000] from the sample's seed.
#pragma once
#include <cstdint>
#include <string>

#include "eval/eval_util.h"
#include "text/tokenizer.h"

namespace lawcat::eval {

inline constexpr const char* kPasskeyTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz "
    "you about the important information there.";
inline constexpr const char* kPasskeyGarbage =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
inline constexpr const char* kPasskeyQuestion = "What is the pass key? The pass key is";

// "The pass key is {key}. Remember it. {key} is the pass key."
std::string passkey_needle(const std::string& key);

// The prompt for `garbage_chars` characters of garbage, `depth` in [0, 1].
std::string passkey_prompt(int64_t garbage_chars, double depth, const std::string& key);

// A fitted sample: `target_tokens` prompt tokens, needle at `depth` (0..1),
// key from `seed`. `hint` (optional, in/out) carries the fitted garbage size
// from one sample of a cell to the next. ConfigError when the target is too
// short for the fixed parts of the prompt.
PromptSample make_passkey_sample(const text::Tokenizer& tokenizer, int64_t target_tokens, double depth,
                                 uint64_t seed, int64_t* hint = nullptr);

// Correct when the continuation contains the key.
bool passkey_correct(const std::string& output, const std::string& key);

}  // namespace lawcat::eval
