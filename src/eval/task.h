// One long-context eval task (passkey, niah, babilong, ppl, longppl) as the grid
// runner (eval_runner.cpp) sees it. The runner owns the grid: models, results.jsonl
// (resume), records' common fields, progress, the report; a task owns what is its
// own: its defaults and option checks, its data, its cells and their keys, how one
// cell is run and scored, its settings and its plot.
//
// Prompt tasks (passkey, niah, babilong) share one run(): make_prompt, greedy
// decoding through the decode state (generate_ids), score.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "eval/eval_runner.h"
#include "eval/eval_util.h"
#include "eval/report.h"
#include "model/llama.h"
#include "text/tokenizer.h"
#include "util/progress.h"

namespace lawcat::eval {

// One cell sample of one model, with its results.jsonl key.
struct GridItem {
  std::string variant;  // as shown (e.g. "qa2-raw")
  int64_t length = 0, depth = -1, sample = 0;
  int64_t babi = -1;    // babilong: bAbI question index
  std::string key;
};

// The model under evaluation, as its cells see it.
struct EvalModel {
  std::string spec, name, dir;  // --models entry, display name, the model as keys name it
  model::LlamaForCausalLMImpl* model = nullptr;
  const text::Tokenizer* tokenizer = nullptr;
  std::vector<int64_t> stop_ids;
  int64_t bos = -1;
  bool pure_lawcat = false;
  int64_t max_positions = 0;
  Progress* progress = nullptr;          // null without --progress
  std::set<int64_t> warned_lengths;      // lengths already warned about
  std::map<std::string, int64_t> hints;  // fitted haystack size per (variant, length, depth)

  // Whether `needed` positions at `length` go past the softmax layers' positions
  // (warned once per length).
  bool beyond_positions(const std::string& task, int64_t length, int64_t needed);
};

class EvalTask {
 public:
  explicit EvalTask(std::string name) : name_(std::move(name)) {}
  virtual ~EvalTask() = default;
  const std::string& name() const { return name_; }

  // Grid shape and defaults.
  virtual std::vector<int64_t> default_lengths() const = 0;
  virtual bool has_depth() const { return false; }
  virtual bool takes_zero_length() const { return false; }
  // Fills the task's defaults into `o` (variants, max_new_tokens) and checks its options.
  virtual void defaults(EvalOptions& o) const;
  // Reads and checks the task's data, before any model is loaded.
  virtual void load(const EvalOptions& o) { (void)o; }
  // The cells of one model (`dir`: the model as keys name it), each with its key.
  virtual std::vector<GridItem> cells(const EvalOptions& o, const std::string& dir) const = 0;
  // Per model, before its cells run: what they share (the tokenized text, documents).
  virtual void begin_model(const EvalOptions& o, EvalModel& m) { (void)o, (void)m; }
  // Runs one cell sample and writes its results (score, ...) into `rec`.
  virtual void run(const EvalOptions& o, EvalModel& m, const GridItem& w, nlohmann::json& rec) = 0;
  // Runs several cell samples together (--batch-size > 1): recs[i] is items[i]'s record.
  // Default: run() on each; prompt tasks decode their prompts as one left-padded batch.
  virtual void run_batch(const EvalOptions& o, EvalModel& m, const std::vector<GridItem>& items,
                         std::vector<nlohmann::json>& recs);

  // Reporting.
  virtual const char* progress_unit() const { return "prompt"; }
  virtual bool is_accuracy() const { return true; }  // the progress line shows the mean score
  virtual void settings(const EvalOptions& o, nlohmann::json& s) const { (void)o, (void)s; }
  virtual bool plot(const EvalOptions& o, const std::filesystem::path& png, const std::string& variant,
                    const std::vector<Cell>& cells, const std::vector<std::string>& models) const = 0;

 private:
  std::string name_;
};

// passkey, niah, babilong: a prompt per sample, greedy-decoded, the output scored.
class PromptTask : public EvalTask {
 public:
  using EvalTask::EvalTask;
  std::vector<GridItem> cells(const EvalOptions& o, const std::string& dir) const override;
  void run(const EvalOptions& o, EvalModel& m, const GridItem& w, nlohmann::json& rec) override;
  void run_batch(const EvalOptions& o, EvalModel& m, const std::vector<GridItem>& items,
                 std::vector<nlohmann::json>& recs) override;
  bool plot(const EvalOptions& o, const std::filesystem::path& png, const std::string& variant,
            const std::vector<Cell>& cells, const std::vector<std::string>& models) const override;

  // Samples per cell (babilong: the chosen questions of the variant).
  virtual int64_t samples(const EvalOptions& o, const std::string& variant) const { (void)variant; return o.samples; }
  virtual int64_t babi_index(const std::string& variant, int64_t sample) const { (void)variant, (void)sample; return -1; }
  // The prompt of one sample; `depth` in [0, 1], `hint` as in fit_units.
  virtual PromptSample make_prompt(const EvalOptions& o, const text::Tokenizer& tokenizer, const GridItem& w,
                                   double depth, uint64_t seed, int64_t* hint) const = 0;
  // Scores the decoded output: rec["score"] (and task extras).
  virtual void score(const EvalOptions& o, const std::string& output, const PromptSample& ps,
                     nlohmann::json& rec) const = 0;

 private:
  // run's halves: the prompt and its fields of `rec`; then the decoded output's fields and score.
  PromptSample prepare(const EvalOptions& o, EvalModel& m, const GridItem& w, nlohmann::json& rec);
  void finish(const EvalOptions& o, EvalModel& m, const PromptSample& ps, const DecodeResult& dr,
              nlohmann::json& rec) const;
};

std::unique_ptr<EvalTask> make_passkey_task();
std::unique_ptr<EvalTask> make_niah_task();
std::unique_ptr<EvalTask> make_babilong_task();
std::unique_ptr<EvalTask> make_ppl_task();
std::unique_ptr<EvalTask> make_longppl_task();
// By --task name; ConfigError naming the tasks for an unknown one.
std::unique_ptr<EvalTask> make_task(const std::string& name);

// "swap:DIR" -> DIR; a path as absolute as it can be made.
std::string model_dir_of(const std::string& spec);
std::string absolute_string(const std::filesystem::path& p);

}  // namespace lawcat::eval
