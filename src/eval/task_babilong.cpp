// BABILong (bAbI facts in a background book, eval/babilong.h) as an eval task.
#include "eval/babilong.h"
#include "eval/task.h"
#include "util/error.h"
#include "util/log.h"

namespace lawcat::eval {
namespace {

std::string base_variant(const std::string& v) {  // "qa2-raw" -> "qa2"
  const auto p = v.find("-raw");
  return p == std::string::npos ? v : v.substr(0, p);
}

// The first `samples` questions of bAbI task `t` that BABILong's test_100_idxs.json
// selects (the file's first questions when that list is missing).
std::vector<BabiSample> chosen_questions(const std::filesystem::path& data, const std::string& t, int64_t samples) {
  const auto file = babi_test_file(data / "eval" / "babi" / "tasks_1-20_v1-2" / "en", t);
  std::vector<BabiSample> all = load_babi(file);
  std::vector<int64_t> idx;
  const auto idx_file = data / "eval" / "babilong" / "test_100_idxs.json";
  if (std::filesystem::exists(idx_file)) {
    idx = load_babilong_indices(idx_file, t);
  } else {
    log::warn(idx_file.string(), " not found: using the first questions of ", file.string());
    for (int64_t i = 0; i < static_cast<int64_t>(all.size()); ++i) idx.push_back(i);
  }
  std::vector<BabiSample> chosen;
  for (int64_t i : idx) {
    if (static_cast<int64_t>(chosen.size()) >= samples) break;
    LAWCAT_CHECK(i < static_cast<int64_t>(all.size()), DataError,
                 idx_file.string() << ": " << t << " index " << i << " is out of range (" << file.string() << " has "
                                   << all.size() << " questions)");
    chosen.push_back(all[static_cast<size_t>(i)]);
  }
  return chosen;
}

class BabilongTask : public PromptTask {
 public:
  BabilongTask() : PromptTask("babilong") {}
  std::vector<int64_t> default_lengths() const override { return {0, 1024, 2048, 4096, 8192, 16384}; }
  bool takes_zero_length() const override { return true; }
  void defaults(EvalOptions& o) const override {
    if (o.variants.empty()) o.variants = {"qa2"};
    for (auto& v : o.variants) {
      babilong_prompt(v);  // validates
      if (o.raw_probe) v += "-raw";
    }
    if (o.max_new_tokens <= 0) o.max_new_tokens = o.raw_probe ? 5 : 20;  // BABILong generates up to 20 tokens
  }
  void load(const EvalOptions& o) override {
    LAWCAT_CHECK(!o.data.empty() && std::filesystem::is_directory(o.data), DataError,
                 (o.data.empty() ? std::string("../shared/data") : o.data.string())
                     << ": eval data folder not found (pass --data DIR or set $LAWCAT_SHARED_DATA)");
    background_ = load_background_sentences(o.data / "corpora" / "moby_dick" / "moby_dick.txt");
    for (const auto& v : o.variants) {
      const std::string t = base_variant(v);
      if (!babi_.count(t)) babi_[t] = chosen_questions(o.data, t, o.samples);
    }
  }
  int64_t samples(const EvalOptions&, const std::string& variant) const override {
    return static_cast<int64_t>(babi_.at(base_variant(variant)).size());
  }
  int64_t babi_index(const std::string& variant, int64_t sample) const override {
    return babi_.at(base_variant(variant))[static_cast<size_t>(sample)].index;
  }
  PromptSample make_prompt(const EvalOptions& o, const text::Tokenizer& tokenizer, const GridItem& w, double,
                           uint64_t seed, int64_t* hint) const override {
    const std::string t = base_variant(w.variant);
    return make_babilong_sample(tokenizer, t, babi_.at(t)[static_cast<size_t>(w.sample)], background_, w.length,
                                seed, o.raw_probe, hint);
  }
  void score(const EvalOptions& o, const std::string& output, const PromptSample& ps,
             nlohmann::json& rec) const override {
    if (o.raw_probe) {
      rec["score"] = raw_probe_score(output, ps.references[0]);
      return;
    }
    const BabilongScore bs = babilong_score(output, ps.references[0], ps.meta["question"].get<std::string>());
    rec["score"] = bs.score;
    rec["strict"] = bs.strict;
  }
  bool plot(const EvalOptions&, const std::filesystem::path& png, const std::string& variant,
            const std::vector<Cell>& cells, const std::vector<std::string>& models) const override {
    return plot_lines(png, "babilong " + variant + " accuracy", "accuracy (%)", cells, models, true);
  }

 private:
  std::map<std::string, std::vector<BabiSample>> babi_;  // by task (qa1, qa2, qa3): the chosen questions
  std::vector<std::string> background_;
};

}  // namespace

std::unique_ptr<EvalTask> make_babilong_task() { return std::make_unique<BabilongTask>(); }

}  // namespace lawcat::eval
