#include "eval/task_corpus.h"

#include <algorithm>
#include <map>

#include "eval/babilong.h"
#include "eval/eval_util.h"
#include "eval/niah.h"
#include "eval/passkey.h"
#include "util/error.h"
#include "util/progress.h"

namespace lawcat::eval {

namespace {

bool is_babi(const std::string& t) { return t == "qa1" || t == "qa2" || t == "qa3"; }
bool is_niah(const std::string& t) { return t.rfind("s-niah-", 0) == 0; }

}  // namespace

std::string task_answer(const std::string& task, bool raw_probe, const std::string& question,
                        const std::vector<std::string>& references) {
  LAWCAT_CHECK(!references.empty(), ConfigError, "task corpus: a " << task << " sample has no reference answer");
  if (task == "passkey" || is_niah(task)) {
    std::string joined;
    for (const auto& r : references) joined += (joined.empty() ? "" : ", ") + r;
    return " " + joined + ".";
  }
  // BABILong: the raw probe's prompt ends with "... is in the"; the template's answer
  // follows its post-prompt ("The most recent location of P is L." / "The X is in L." /
  // "Before the Y the X was in the L.").
  if (raw_probe) return " " + references.front() + ".";
  const std::string prefix = raw_probe_prefix(question);  // "Mary is in the", "The apple is in the", ...
  if (task == "qa1") return "\nAnswer: The most recent location of " + prefix.substr(0, prefix.find(" is in the")) +
                            " is " + references.front() + ".";
  return "\nAnswer: " + prefix + " " + references.front() + ".";
}

std::vector<TaskDocument> make_task_corpus(const text::Tokenizer& tokenizer, const TaskCorpusOptions& o) {
  LAWCAT_CHECK(!o.tasks.empty(), ConfigError, "task corpus: no tasks given");
  LAWCAT_CHECK(o.count > 0, ConfigError, "task corpus: --count must be >= 1, got " << o.count);
  LAWCAT_CHECK(o.min_tokens >= 64 && o.min_tokens <= o.max_tokens, ConfigError,
               "task corpus: need 64 <= --min-tokens <= --max-tokens, got " << o.min_tokens << " and " << o.max_tokens);
  // Task data, checked up front.
  std::map<std::string, NiahData> niah;
  std::map<std::string, std::vector<BabiSample>> babi;
  std::vector<std::string> background;
  for (const auto& t : o.tasks) {
    if (t == "passkey") continue;
    if (is_niah(t)) {
      niah[t] = load_niah_data(o.data / "eval" / "ruler", niah_variant(t));
    } else if (is_babi(t)) {
      babi[t] = load_babi(babi_file(o.data / "eval" / "babi" / "tasks_1-20_v1-2" / "en", t, "train"));
      if (background.empty())
        background = load_background_sentences(o.data / "corpora" / "moby_dick" / "moby_dick.txt");
    } else {
      throw ConfigError("task corpus: unknown task '" + t + "' (passkey, s-niah-1, s-niah-2, s-niah-3, qa1, qa2, qa3)");
    }
  }
  std::vector<TaskDocument> out;
  out.reserve(static_cast<size_t>(o.count));
  Progress progress("task corpus", o.count, "docs");
  for (int64_t i = 0; i < o.count; ++i) {
    const std::string& t = o.tasks[static_cast<size_t>(i) % o.tasks.size()];
    Rng rng(sample_seed(o.seed, "train:" + t, i, 0, 0));
    const int64_t length = rng.uniform_int(o.min_tokens, o.max_tokens);
    const double depth = rng.uniform();
    const uint64_t seed = rng.next();
    TaskDocument d;
    d.task = t;
    PromptSample s;
    bool raw = false;
    std::string question;
    // The builders insist on prompts within 2 % of the target (an eval needs exact lengths);
    // a training document need not: when one cannot fit, try another sample, a bit longer.
    for (int attempt = 0;; ++attempt) {
      const int64_t len = length + 37 * attempt;
      const uint64_t sd = seed + static_cast<uint64_t>(attempt);
      try {
        if (t == "passkey") {
          s = make_passkey_sample(tokenizer, len, depth, sd);
        } else if (is_niah(t)) {
          // The S-NIAH template alone is ~120-130 tokens: leave room for a haystack.
          s = make_niah_sample(tokenizer, niah[t], niah_variant(t), std::max<int64_t>(len, 192), depth, sd);
        } else {
          const auto& pool = babi[t];
          const BabiSample& q = pool[static_cast<size_t>(rng.uniform_int(0, static_cast<int64_t>(pool.size()) - 1))];
          raw = (i / static_cast<int64_t>(o.tasks.size())) % 2 == 1;
          // BABILong's length is the context's; leave room for the template (~330 tokens).
          const int64_t ctx = raw ? len - 40 : std::max<int64_t>(0, len - 360);
          s = make_babilong_sample(tokenizer, t, q, background, std::max<int64_t>(0, ctx), sd, raw);
          question = q.question;
        }
        break;
      } catch (const ConfigError&) {
        if (attempt >= 8) throw;
      }
    }
    d.text = s.prompt + task_answer(t, raw, question, s.references);
    d.tokens = s.measured_tokens;
    if (is_babi(t)) d.task += raw ? "-raw" : "";
    out.push_back(std::move(d));
    progress.advance();
  }
  progress.finish();
  return out;
}

}  // namespace lawcat::eval
