// `lawcat tasks` (eval/task_corpus.h): every document, prompt + answer, lies within
// --min-tokens..--max-tokens and its `tokens` is the whole document's length; a task
// whose shortest document passes --max-tokens is a ConfigError naming it.
#include <map>

#include "common/catch.h"
#include "eval/eval_util.h"
#include "eval/task_corpus.h"
#include "text/tokenizer.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::eval;

namespace {
// Checks every document of `o` against its bounds; returns the documents per task.
std::map<std::string, int64_t> check_corpus(const text::Tokenizer& tok, const TaskCorpusOptions& o) {
  const auto docs = make_task_corpus(tok, o);
  CHECK(static_cast<int64_t>(docs.size()) == o.count);
  std::map<std::string, int64_t> per_task;
  for (const auto& d : docs) {
    CAPTURE(o.min_tokens, o.max_tokens, d.task, d.tokens, d.text.substr(0, 200));
    CHECK(d.tokens == static_cast<int64_t>(encode_prompt(tok, d.text).size()));
    CHECK(d.tokens >= o.min_tokens);
    CHECK(d.tokens <= o.max_tokens);
    ++per_task[d.task];
  }
  return per_task;
}
}  // namespace

TEST_CASE("task corpus: whole documents within --min-tokens..--max-tokens; tokens counts all of one",
          "[eval][tasks]") {
  LAWCAT_SHARED_OR_SKIP(tok_file, "models/stories260K/tok512.bin");
  LAWCAT_SHARED_OR_SKIP(babi, "eval/babi/tasks_1-20_v1-2/en");
  LAWCAT_SHARED_OR_SKIP(ruler, "eval/ruler");
  auto tok = text::load_llama2c(tok_file);
  TaskCorpusOptions o;
  o.data = test::shared_data();
  o.count = 42;  // 6 per task; BABILong 3 template, 3 raw probe
  o.seed = 5;
  // Near 1K (a teacher of 1024 positions), and a wide range whose low end is below every
  // task's shortest document (template + answer): raised to it, never past the top.
  for (const auto& [lo, hi] : std::vector<std::pair<int64_t, int64_t>>{{900, 1024}, {64, 1024}}) {
    o.min_tokens = lo;
    o.max_tokens = hi;
    const auto per_task = check_corpus(*tok, o);
    for (const std::string t : {"passkey", "s-niah-1", "s-niah-2", "s-niah-3"}) CHECK(per_task.at(t) == 6);
    for (const std::string t : {"qa1", "qa2", "qa3"}) {
      CHECK(per_task.at(t) == 3);
      CHECK(per_task.at(t + "-raw") == 3);
    }
  }
}

TEST_CASE("task corpus: a task whose shortest document is longer than --max-tokens is an error naming it",
          "[eval][tasks]") {
  LAWCAT_SHARED_OR_SKIP(tok_file, "models/stories260K/tok512.bin");
  LAWCAT_SHARED_OR_SKIP(babi, "eval/babi/tasks_1-20_v1-2/en");
  LAWCAT_SHARED_OR_SKIP(ruler, "eval/ruler");
  auto tok = text::load_llama2c(tok_file);
  TaskCorpusOptions o;
  o.data = test::shared_data();
  o.count = 3;
  o.min_tokens = 64;
  o.max_tokens = 100;  // below every template (tok512: passkey ~165, S-NIAH ~245, BABILong ~600)
  for (const std::string t : {"passkey", "s-niah-1", "qa1"}) {
    CAPTURE(t);
    o.tasks = {t};
    CHECK_THROWS_AS(make_task_corpus(*tok, o), ConfigError);
    CHECK_THROWS_WITH(make_task_corpus(*tok, o), LAWCAT_CONTAINS("the shortest " + t + " document"));
    CHECK_THROWS_WITH(make_task_corpus(*tok, o), LAWCAT_CONTAINS("more than --max-tokens 100"));
  }
  // The raw probe alone (facts, question, answer) is short enough: qa1's template half is not.
  o.tasks = {"qa1"};
  o.max_tokens = 300;
  CHECK_THROWS_WITH(make_task_corpus(*tok, o), LAWCAT_CONTAINS("BABILong template"));
}

TEST_CASE("task corpus: BABILong and S-NIAH with the Llama-2 SentencePiece tokenizer stay within 128..500",
          "[eval][tasks]") {
  LAWCAT_SHARED_OR_SKIP(model, "models/retriever13m");
  LAWCAT_SHARED_OR_SKIP(babi, "eval/babi/tasks_1-20_v1-2/en");
  LAWCAT_SHARED_OR_SKIP(ruler, "eval/ruler");
  if (!std::filesystem::exists(model / "tokenizer.model")) LAWCAT_SKIP("no tokenizer.model in " << model.string());
  auto tok = text::load_tokenizer(model);
  TaskCorpusOptions o;
  o.data = test::shared_data();
  o.tasks = {"qa3", "qa2", "s-niah-2"};  // qa3's stories run to 2,000+ tokens of facts
  o.count = 30;
  o.min_tokens = 128;
  o.max_tokens = 500;
  check_corpus(*tok, o);
}
