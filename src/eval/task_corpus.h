// Retrieval tasks WITH their answers, as training text: the data ablation of the
// paper reproduction (LAWCAT distilled with retrieval-task text added to generic
// text). Each document is one prompt built by the eval's own builders (passkey,
// S-NIAH-1/2/3, BABILong qa1/qa2/qa3, template or raw probe) followed by its
// answer, so the student sees exactly the formats `lawcat eval` scores.
//
// Held apart from the evaluation:
//   * seeds come from sample_seed(seed, "train:" + task, ...), a different stream
//     from the eval's sample_seed(seed, task + variant, ...);
//   * bAbI questions come from the *_train.txt files (the eval uses *_test.txt).
// Lengths are those of whole documents (prompt + answer, BOS first when the tokenizer
// adds one: `encode_prompt`), each within [min_tokens, max_tokens]: a target uniform in
// the range (S-NIAH: at least 192 where max_tokens allows), met within a few tokens.
// BABILong grows its context (facts, then background) to the target, drawing a bAbI
// question whose facts alone fit it (else one whose facts fit max_tokens). A task's
// shortest document (template + answer; BABILong: with the facts) is its floor: a
// target below it gives that shortest document, so min_tokens under a floor is raised
// to it; a floor above max_tokens is a ConfigError naming the task and the floor.
// Depths are uniform in [0, 100] %.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace lawcat::eval {

struct TaskCorpusOptions {
  // passkey, s-niah-1, s-niah-2, s-niah-3, qa1, qa2, qa3 (BABILong: half template, half raw probe).
  std::vector<std::string> tasks = {"passkey", "s-niah-1", "s-niah-2", "s-niah-3", "qa1", "qa2", "qa3"};
  int64_t count = 1000;        // documents, spread round-robin over the tasks
  int64_t min_tokens = 128;
  int64_t max_tokens = 1024;
  uint64_t seed = 1;
  std::filesystem::path data;  // ../shared/data (eval/ruler, eval/babi, corpora/moby_dick)
};

struct TaskDocument {
  std::string task;
  std::string text;            // prompt + answer
  int64_t tokens = 0;          // tokens of the whole document (text), BOS first when the tokenizer adds one
};

// Builds the documents (ConfigError for an unknown task, a bad range or one a task cannot
// fit, DataError naming a missing data file).
std::vector<TaskDocument> make_task_corpus(const text::Tokenizer& tokenizer, const TaskCorpusOptions& options);

// The answer appended after a task's prompt (the text the model is trained to produce).
std::string task_answer(const std::string& task, bool raw_probe, const std::string& question,
                        const std::vector<std::string>& references);

}  // namespace lawcat::eval
