// BABILong QA2 / QA3 (docs/eval.md, "Formats"; prompts and scoring from
// booydar/babilong babilong/prompts.py and metrics.py):
//
// 1. bAbI v1.2 samples: each question with every fact line of its story that
//    precedes it (earlier questions dropped). Samples are numbered in file order;
//    ../shared/data/eval/babilong/test_100_idxs.json picks the 100 BABILong uses.
// 2. Background: sentences of a long book (Moby Dick), from a random sentence
//    (per sample seed), taken in order (wrapping around) until the context — facts
//    plus background, the quantity BABILong calls the length — reaches the target
//    in tokens; the last sentence is cut at a word so the context lands within
//    2 % of the target. 0 = facts only.
// 3. Facts go between background sentences: each fact gets a uniformly random
//    position, positions sorted (several facts may share one), a fact precedes
//    the background sentence at its position (BABILong's NoiseInjectionDataset).
//    Pieces are joined by single spaces.
// 4. Prompt: "{instruction}\n\n{examples}\n\n{post_prompt}\n\n<context>\n{context}\n</context>\n\nQuestion: {question}"
//    (context stripped, the whole stripped). Raw probe (models that are not
//    instruction-tuned): "{context} {question} {answer prefix}", e.g.
//    "... Where is the football? The football is in the".
// 5. Score: lower-case the output, keep its first sentence (up to the first '.'),
//    correct when the target word is in it. `strict` is BABILong's
//    compare_answers: additionally the target must be the only location named
//    there, not counting locations the question names. Raw probe: the first word
//    of the continuation (lower-cased, punctuation stripped) equals the target.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "eval/eval_util.h"
#include "text/tokenizer.h"

namespace lawcat::eval {

struct BabilongPrompt {
  const char* instruction;
  const char* examples;
  const char* post_prompt;
};
// qa2 / qa3 (ConfigError otherwise). Verbatim from BABILong's DEFAULT_PROMPTS.
const BabilongPrompt& babilong_prompt(const std::string& task);
// The BABILong template with the parts filled in (context stripped, result stripped).
std::string babilong_format(const BabilongPrompt& p, const std::string& context, const std::string& question);

struct BabiSample {
  int64_t index = 0;                 // position among the file's questions (0-based)
  int64_t line = 0;                  // 1-based line of the question in the file
  std::vector<std::string> facts;    // the story's fact sentences before the question
  std::string question, answer;
};
// Parses a bAbI v1.2 file ("N sentence" / "N question\tanswer\tsupporting ids").
// DataError naming the file and line when missing or malformed.
std::vector<BabiSample> load_babi(const std::filesystem::path& file);
// The bAbI test file of a task under `babi_en_dir` (qa2_*_test.txt), DataError if absent.
std::filesystem::path babi_test_file(const std::filesystem::path& babi_en_dir, const std::string& task);
// The task's file of a split ("test", "train": qa2_*_train.txt), DataError if absent.
std::filesystem::path babi_file(const std::filesystem::path& babi_en_dir, const std::string& task,
                                const std::string& split);
// test_100_idxs.json: {"qa1": [i, ...], ...}. Returns the task's list; DataError
// naming the file when malformed or the task is missing.
std::vector<int64_t> load_babilong_indices(const std::filesystem::path& json_file, const std::string& task);

// Background sentences of a book (whitespace-collapsed, sentence-split).
// DataError naming the file when missing or empty.
std::vector<std::string> load_background_sentences(const std::filesystem::path& book);

// "The football is in the" (qa2: "Where is the X?") or "Before the Y the X was in
// the" (qa3: "Where was the X before the Y?"). DataError for other questions.
std::string raw_probe_prefix(const std::string& question);

// The context (facts hidden in background) for `words` background words.
std::string babilong_context(const BabiSample& sample, const std::vector<std::string>& background, int64_t start,
                             const std::vector<double>& fact_fractions, int64_t words);

PromptSample make_babilong_sample(const text::Tokenizer& tokenizer, const std::string& task, const BabiSample& sample,
                                  const std::vector<std::string>& background, int64_t target_tokens, uint64_t seed,
                                  bool raw_probe, int64_t* hint = nullptr);

struct BabilongScore {
  double score = 0;   // spec rule: target in the first sentence
  double strict = 0;  // BABILong compare_answers
};
BabilongScore babilong_score(const std::string& output, const std::string& target, const std::string& question);
// Raw probe: first word of the continuation == target.
double raw_probe_score(const std::string& output, const std::string& target);

}  // namespace lawcat::eval
