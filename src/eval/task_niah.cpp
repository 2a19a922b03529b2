// RULER's single needle-in-a-haystack tasks (eval/niah.h) as an eval task.
#include <algorithm>

#include "eval/niah.h"
#include "eval/task.h"
#include "util/error.h"

namespace lawcat::eval {
namespace {

class NiahTask : public PromptTask {
 public:
  NiahTask() : PromptTask("niah") {}
  std::vector<int64_t> default_lengths() const override { return {1024, 2048, 4096, 8192}; }
  bool has_depth() const override { return true; }
  void defaults(EvalOptions& o) const override {
    if (o.variants.empty()) o.variants = {"s-niah-1"};
    for (auto& v : o.variants) v = niah_variant(v).name;
    if (o.max_new_tokens <= 0) o.max_new_tokens = 128;  // RULER tokens_to_generate
    o.max_new_tokens = std::min<int64_t>(o.max_new_tokens, 128);
  }
  void load(const EvalOptions& o) override {
    LAWCAT_CHECK(!o.data.empty() && std::filesystem::is_directory(o.data), DataError,
                 (o.data.empty() ? std::string("../shared/data") : o.data.string())
                     << ": eval data folder not found (pass --data DIR or set $LAWCAT_SHARED_DATA)");
    for (const auto& v : o.variants) data_[v] = load_niah_data(o.data / "eval" / "ruler", niah_variant(v));
  }
  PromptSample make_prompt(const EvalOptions& o, const text::Tokenizer& tokenizer, const GridItem& w, double depth,
                           uint64_t seed, int64_t* hint) const override {
    return make_niah_sample(tokenizer, data_.at(w.variant), niah_variant(w.variant), w.length, depth, seed, hint,
                            o.ruler_singular);
  }
  void score(const EvalOptions&, const std::string& output, const PromptSample& ps,
             nlohmann::json& rec) const override {
    rec["score"] = niah_score(output, ps.references);
  }

 private:
  std::map<std::string, NiahData> data_;  // by variant
};

}  // namespace

std::unique_ptr<EvalTask> make_niah_task() { return std::make_unique<NiahTask>(); }

}  // namespace lawcat::eval
