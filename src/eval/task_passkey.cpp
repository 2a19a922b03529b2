// Passkey retrieval (eval/passkey.h) as an eval task.
#include "eval/passkey.h"
#include "eval/task.h"

namespace lawcat::eval {
namespace {

class PasskeyTask : public PromptTask {
 public:
  PasskeyTask() : PromptTask("passkey") {}
  std::vector<int64_t> default_lengths() const override { return {1024, 2048, 4096, 8192, 16384, 32768}; }
  bool has_depth() const override { return true; }
  void defaults(EvalOptions& o) const override {
    if (o.max_new_tokens <= 0) o.max_new_tokens = 10;
    EvalTask::defaults(o);
  }
  PromptSample make_prompt(const EvalOptions&, const text::Tokenizer& tokenizer, const GridItem& w, double depth,
                           uint64_t seed, int64_t* hint) const override {
    return make_passkey_sample(tokenizer, w.length, depth, seed, hint);
  }
  void score(const EvalOptions&, const std::string& output, const PromptSample& ps,
             nlohmann::json& rec) const override {
    rec["score"] = passkey_correct(output, ps.references[0]) ? 1.0 : 0.0;
  }
};

}  // namespace

std::unique_ptr<EvalTask> make_passkey_task() { return std::make_unique<PasskeyTask>(); }

}  // namespace lawcat::eval
