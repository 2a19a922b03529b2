// The perplexity tasks as eval tasks: ppl (perplexity at each context length,
// eval/long_ppl.h) and longppl (mean NLL per position bucket of long documents,
// eval/position_ppl.h).
#include <algorithm>
#include <cmath>
#include <optional>

#include "eval/long_ppl.h"
#include "eval/position_ppl.h"
#include "eval/task.h"
#include "util/error.h"

namespace lawcat::eval {
namespace {

// NaN / Inf weights make every score meaningless: stop, naming the model.
void check_finite_nll(const std::string& task, const EvalModel& m, int64_t length, double nll) {
  LAWCAT_CHECK(std::isfinite(nll), DataError,
               "eval " << task << ": model " << m.spec << ": the mean NLL at length " << length << " is " << nll
                       << " (not finite): the model's weights or activations hold NaN or Inf "
                          "(check the weights; try --dtype float32)");
}

class TextTask : public EvalTask {
 public:
  using EvalTask::EvalTask;
  void load(const EvalOptions& o) override {
    LAWCAT_CHECK(!o.text.empty(), ConfigError, "eval --task " << name() << " needs --text FILE");
    LAWCAT_CHECK(std::filesystem::is_regular_file(o.text), DataError,
                 o.text.string() << ": text file for the " << name() << " task not found");
  }
  bool is_accuracy() const override { return false; }
};

class PplTask : public TextTask {
 public:
  PplTask() : TextTask("ppl") {}
  std::vector<int64_t> default_lengths() const override { return {512, 1024, 2048, 4096, 8192}; }
  std::vector<GridItem> cells(const EvalOptions& o, const std::string& dir) const override {
    std::vector<GridItem> work;
    for (const auto& v : o.variants)
      for (int64_t L : o.lengths) {
        GridItem w{v, L, -1, 0, -1, ""};
        nlohmann::json key = nlohmann::json::array({name(), v, dir, L, absolute_string(o.text), o.ppl_max_tokens, o.ppl_documents});
        if (o.text_field != "text") key.push_back(o.text_field);  // the default keeps earlier records' keys
        w.key = key.dump();
        work.push_back(w);
      }
    return work;
  }
  void begin_model(const EvalOptions& o, EvalModel& m) override {
    LongPplOptions opt;
    opt.max_tokens = o.ppl_max_tokens;
    opt.documents = o.ppl_documents;
    opt.text_field = o.text_field;
    streams_ = tokenize_for_long_ppl(*m.tokenizer, o.text, opt);
  }
  void run(const EvalOptions& o, EvalModel& m, const GridItem& w, nlohmann::json& rec) override {
    rec["beyond_max_positions"] = m.beyond_positions(name(), w.length, w.length);  // BOS + ctx - 1 inputs
    PerplexityResult pr = long_ppl(*m.model, streams_, w.length, m.bos, false);
    rec["score"] = pr.perplexity();
    rec["nll"] = pr.mean_nll();
    rec["tokens"] = pr.tokens;
    rec["windows"] = pr.windows;
    rec["seconds"] = pr.seconds;
    rec["measured_tokens"] = static_cast<double>(w.length);
    rec["text"] = absolute_string(o.text);
    check_finite_nll(name(), m, w.length, rec["nll"].get<double>());
  }
  const char* progress_unit() const override { return "ctx"; }
  void settings(const EvalOptions& o, nlohmann::json& s) const override {
    s["text"] = absolute_string(o.text);
    s["ppl_max_tokens"] = o.ppl_max_tokens;
    s["ppl_documents"] = o.ppl_documents;
  }
  bool plot(const EvalOptions&, const std::filesystem::path& png, const std::string&, const std::vector<Cell>& cells,
            const std::vector<std::string>& models) const override {
    return plot_lines(png, "perplexity vs context length", "perplexity", cells, models, false);
  }

 private:
  std::vector<std::vector<int64_t>> streams_;
};

// One item per (document, position bucket); an item's length is its bucket's end.
class LongPplTask : public TextTask {
 public:
  LongPplTask() : TextTask("longppl") {}
  std::vector<int64_t> default_lengths() const override { return {32768}; }
  void defaults(EvalOptions& o) const override {
    LAWCAT_CHECK(o.lengths.size() == 1 && o.lengths[0] >= 2 * o.bucket && o.bucket > 0, ConfigError,
                 "eval --task longppl: give one --lengths value (the document length, e.g. 32768) of at least "
                 "two --bucket sizes (" << o.bucket << ")");
    EvalTask::defaults(o);
  }
  std::vector<GridItem> cells(const EvalOptions& o, const std::string& dir) const override {
    std::vector<GridItem> work;
    for (const auto& v : o.variants)
      for (int64_t L : o.lengths)
        for (int64_t s = 0; s < o.samples; ++s)
          for (int64_t b = 0; b < L / o.bucket; ++b) {
            GridItem w{v, (b + 1) * o.bucket, -1, s, -1, ""};
            nlohmann::json key = nlohmann::json::array({name(), dir, L, o.bucket, absolute_string(o.text), s, b});
            if (o.text_field != "text") key.push_back(o.text_field);  // the default keeps earlier records' keys
            w.key = key.dump();
            work.push_back(w);
          }
    return work;
  }
  void begin_model(const EvalOptions& o, EvalModel& m) override {
    doc_nll_.clear();
    docs_ = long_documents(*m.tokenizer, o.text, o.lengths[0], m.bos, o.samples, o.text_field);
    LAWCAT_CHECK(static_cast<int64_t>(docs_.size()) >= o.samples, DataError,
                 o.text.string() << ": only " << docs_.size() << " documents have " << o.lengths[0]
                                 << " tokens; --samples asks for " << o.samples);
  }
  void run(const EvalOptions& o, EvalModel& m, const GridItem& w, nlohmann::json& rec) override {
    // A bucket's last prediction reads the positions up to its end (the document's L - 1 inputs
    // at most): only buckets ending past the model's positions are marked. Said once per
    // document length (the runner's warning), not per bucket.
    rec["beyond_max_positions"] = m.beyond_positions(name(), o.lengths[0], std::min(w.length, o.lengths[0] - 1));
    if (!doc_nll_.count(w.sample))  // each document is scored once for all its buckets
      doc_nll_[w.sample] = position_nll(*m.model, docs_[static_cast<size_t>(w.sample)], o.bucket);
    const PositionNll& pn = doc_nll_[w.sample];
    const size_t b = static_cast<size_t>(w.length / o.bucket - 1);
    rec["score"] = pn.mean(b);
    rec["nll"] = pn.mean(b);
    rec["tokens"] = pn.tokens[b];
    rec["seconds"] = pn.seconds;
    rec["measured_tokens"] = static_cast<double>(w.length);
    rec["text"] = absolute_string(o.text);
    rec["document_length"] = o.lengths[0];
    check_finite_nll(name(), m, w.length, pn.mean(b));
  }
  const char* progress_unit() const override { return "bucket"; }
  void settings(const EvalOptions& o, nlohmann::json& s) const override {
    s["text"] = absolute_string(o.text);
    s["bucket"] = o.bucket;
  }
  bool plot(const EvalOptions& o, const std::filesystem::path& png, const std::string&, const std::vector<Cell>& cells,
            const std::vector<std::string>& models) const override {
    return plot_lines(png, "NLL by position (mean per " + std::to_string(o.bucket) + "-token bucket)",
                      "mean NLL (nats/token)", cells, models, false);
  }

 private:
  std::vector<std::vector<int64_t>> docs_;
  std::map<int64_t, PositionNll> doc_nll_;
};

}  // namespace

std::unique_ptr<EvalTask> make_ppl_task() { return std::make_unique<PplTask>(); }
std::unique_ptr<EvalTask> make_longppl_task() { return std::make_unique<LongPplTask>(); }

}  // namespace lawcat::eval
