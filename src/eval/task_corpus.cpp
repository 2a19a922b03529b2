#include "eval/task_corpus.h"

#include <algorithm>
#include <cstdint>
#include <limits>
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
  auto document_tokens = [&](const std::string& text) {
    return static_cast<int64_t>(encode_prompt(tokenizer, text).size());
  };
  auto in_bounds = [&](int64_t n) { return n >= o.min_tokens && n <= o.max_tokens; };
  // bAbI questions (pool indices) by the tokens of their shortest document (facts only, no
  // background), per task and form (template / raw probe), built when first needed.
  std::map<std::pair<std::string, bool>, std::vector<std::pair<int64_t, size_t>>> babi_by_length;
  auto babi_lengths = [&](const std::string& t, bool raw) -> const std::vector<std::pair<int64_t, size_t>>& {
    auto& v = babi_by_length[{t, raw}];
    if (v.empty()) {
      const auto& pool = babi[t];
      for (size_t q = 0; q < pool.size(); ++q) {
        // A context of the facts alone (target 0: no background, so the seed does not matter).
        const PromptSample f = make_babilong_sample(tokenizer, t, pool[q], background, 0, 0, raw);
        v.emplace_back(document_tokens(f.prompt + task_answer(t, raw, pool[q].question, f.references)), q);
      }
      std::sort(v.begin(), v.end());
    }
    return v;
  };
  std::vector<TaskDocument> out;
  out.reserve(static_cast<size_t>(o.count));
  Progress progress("task corpus", o.count, "docs");
  for (int64_t i = 0; i < o.count; ++i) {
    const std::string& t = o.tasks[static_cast<size_t>(i) % o.tasks.size()];
    Rng rng(sample_seed(o.seed, "train:" + t, i, 0, 0));
    // The whole document's length (prompt + answer) in tokens. S-NIAH: at least 192 where
    // --max-tokens allows (its template alone is ~120-130 tokens: leave room for a haystack).
    int64_t length = rng.uniform_int(o.min_tokens, o.max_tokens);
    if (is_niah(t)) length = std::max(length, std::min<int64_t>(192, o.max_tokens));
    const double depth = rng.uniform();
    const uint64_t seed = rng.next();
    TaskDocument d;
    d.task = t;
    PromptSample s;
    bool raw = false;
    std::string question;
    int64_t tokens = 0;
    if (is_babi(t)) {
      raw = (i / static_cast<int64_t>(o.tasks.size())) % 2 == 1;
      // A question whose facts alone fit the length; failing that, one whose facts fit
      // --max-tokens (the document is then its facts, no background).
      const auto& by_length = babi_lengths(t, raw);
      auto fitting = [&](int64_t n) {
        return std::upper_bound(by_length.begin(), by_length.end(), std::make_pair(n, SIZE_MAX)) - by_length.begin();
      };
      int64_t n = fitting(length);
      if (n == 0) n = fitting(o.max_tokens);
      LAWCAT_CHECK(n > 0, ConfigError,
                   "task corpus: the shortest " << t << (raw ? " raw-probe" : "") << " document (facts, "
                                                << (raw ? "" : "BABILong template, ") << "question and answer) is "
                                                << by_length.front().first << " tokens, more than --max-tokens "
                                                << o.max_tokens);
      const BabiSample& q = babi[t][by_length[static_cast<size_t>(rng.uniform_int(0, n - 1))].second];
      question = q.question;
      // BABILong's length is the context's: first the facts alone, then background for the
      // tokens the document lacks (the rest of it, template, question and answer, is fixed).
      uint64_t sd = seed;
      int64_t context = 0;
      for (int attempt = 0;; ++attempt) {
        LAWCAT_CHECK(attempt < 16, ConfigError,
                     "task corpus: cannot build a " << t << " document of " << length << " tokens within "
                                                    << o.min_tokens << ".." << o.max_tokens << " (last: " << tokens
                                                    << " tokens)");
        try {
          s = make_babilong_sample(tokenizer, t, q, background, context, sd, raw);
        } catch (const ConfigError&) {  // the context missed its length by more than 2 %: other background
          ++sd;
          continue;
        }
        tokens = document_tokens(s.prompt + task_answer(t, raw, question, s.references));
        if (in_bounds(tokens) && (context > 0 || tokens >= length)) break;
        context = std::max<int64_t>(1, (context ? context : s.measured_tokens) + length - tokens);
      }
    } else {
      // The builders fit the prompt; the answer adds a few tokens, so the target follows the
      // document's measured length. A target below the template throws (`low`: the largest such);
      // `high` is the smallest target whose document passes --max-tokens. In between: bisect.
      // A sample that cannot fit (its key or value is long) gives way to another.
      constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
      int64_t shortest = kNone;
      std::string why;
      bool built = false;
      for (uint64_t other = 0; other < 8 && !built; ++other) {
        int64_t target = length, low = 0, high = kNone, step = 16;
        for (int attempt = 0; attempt < 32 && high - low > 1 && !built; ++attempt) {
          target = std::clamp(target, low + 1, high - 1);
          try {
            s = t == "passkey" ? make_passkey_sample(tokenizer, target, depth, seed + other)
                               : make_niah_sample(tokenizer, niah[t], niah_variant(t), target, depth, seed + other);
          } catch (const ConfigError& e) {
            why = e.what();
            low = target;
            target = high == kNone ? target + step : low + (high - low) / 2;
            step *= 2;
            continue;
          }
          tokens = document_tokens(s.prompt + task_answer(t, raw, question, s.references));
          built = in_bounds(tokens);
          if (tokens > o.max_tokens) {
            high = target;
            shortest = std::min(shortest, tokens);
          }
          target += length - tokens;
        }
      }
      LAWCAT_CHECK(built || shortest == kNone, ConfigError,
                   "task corpus: the shortest " << t << " document tried (template and answer) had " << shortest
                                                << " tokens, more than --max-tokens " << o.max_tokens);
      LAWCAT_CHECK(built, ConfigError,
                   "task corpus: cannot build a " << t << " document of " << length << " tokens within "
                                                  << o.min_tokens << ".." << o.max_tokens << " (" << why << ")");
    }
    d.text = s.prompt + task_answer(t, raw, question, s.references);
    d.tokens = tokens;
    if (is_babi(t)) d.task += raw ? "-raw" : "";
    out.push_back(std::move(d));
    progress.advance();
  }
  progress.finish();
  return out;
}

}  // namespace lawcat::eval
