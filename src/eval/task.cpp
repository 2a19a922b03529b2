#include "eval/task.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"
#include "util/log.h"

namespace lawcat::eval {

// Prompts at least this long are announced before they are built.
constexpr int64_t kLongPrompt = int64_t(1) << 16;

std::string model_dir_of(const std::string& spec) { return spec.rfind("swap:", 0) == 0 ? spec.substr(5) : spec; }

std::string absolute_string(const std::filesystem::path& p) {
  std::error_code ec;
  auto a = std::filesystem::weakly_canonical(p, ec);
  return (ec ? std::filesystem::absolute(p) : a).string();
}

bool EvalModel::beyond_positions(const std::string& task, int64_t length, int64_t needed) {
  const bool beyond = !pure_lawcat && needed > max_positions;
  if (beyond && warned_lengths.insert(length).second)
    log::warn("eval ", task, ": ", name, ": length ", length, " needs ", needed,
              " positions, beyond max_position_embeddings ", max_positions,
              " of its softmax attention; evaluating anyway (marked '*')");
  return beyond;
}

void EvalTask::defaults(EvalOptions& o) const {
  if (o.variants.empty()) o.variants = {""};
  LAWCAT_CHECK(o.variants.size() == 1 && o.variants[0].empty(), ConfigError,
               "eval: --variant is for niah (s-niah-1/2/3) and babilong (qa2/qa3)");
  if (o.max_new_tokens <= 0) o.max_new_tokens = o.raw_probe ? 5 : 20;
}

// ---- prompt tasks: make_prompt -> greedy decoding -> score --------------------------

std::vector<GridItem> PromptTask::cells(const EvalOptions& o, const std::string& dir) const {
  std::vector<GridItem> work;
  for (const auto& v : o.variants)
    for (int64_t L : o.lengths)
      for (int64_t d : o.depths) {
        const int64_t n = samples(o, v);
        for (int64_t s = 0; s < n; ++s) {
          GridItem w{v, L, d, s, babi_index(v, s), ""};
          w.key = nlohmann::json::array({name(), v, dir, L, d, w.babi >= 0 ? w.babi : s, o.seed, o.max_new_tokens,
                                         o.ruler_singular})
                      .dump();
          work.push_back(w);
        }
      }
  return work;
}

void EvalTask::run_batch(const EvalOptions& o, EvalModel& m, const std::vector<GridItem>& items,
                         std::vector<nlohmann::json>& recs) {
  for (size_t i = 0; i < items.size(); ++i) run(o, m, items[i], recs[i]);
}

void PromptTask::run(const EvalOptions& o, EvalModel& m, const GridItem& w, nlohmann::json& rec) {
  const PromptSample ps = prepare(o, m, w, rec);
  finish(o, m, ps, greedy_decode(*m.model, ps.ids, o.max_new_tokens, m.stop_ids), rec);
}

void PromptTask::run_batch(const EvalOptions& o, EvalModel& m, const std::vector<GridItem>& items,
                           std::vector<nlohmann::json>& recs) {
  std::vector<PromptSample> samples;
  std::vector<std::vector<int64_t>> prompts;
  for (size_t i = 0; i < items.size(); ++i) {
    samples.push_back(prepare(o, m, items[i], recs[i]));
    prompts.push_back(samples.back().ids);
  }
  const std::vector<DecodeResult> dr = greedy_decode_batch(*m.model, prompts, o.max_new_tokens, m.stop_ids);
  for (size_t i = 0; i < items.size(); ++i) finish(o, m, samples[i], dr[i], recs[i]);
}

PromptSample PromptTask::prepare(const EvalOptions& o, EvalModel& m, const GridItem& w, nlohmann::json& rec) {
  const std::string& task = name();
  int64_t* hint = &m.hints[w.variant + "|" + std::to_string(w.length) + "|" + std::to_string(w.depth)];
  const double depth = w.depth >= 0 ? static_cast<double>(w.depth) / 100.0 : 0.0;
  const uint64_t seed = sample_seed(o.seed, task + w.variant, w.length, w.depth, w.babi >= 0 ? w.babi : w.sample);
  if (w.length >= kLongPrompt) {  // building takes seconds to minutes: say so
    log::info("eval ", task, ": ", m.name, ": building a ", w.length, "-token prompt",
              w.depth >= 0 ? " at depth " + std::to_string(w.depth) + "%" : std::string());
    if (m.progress) {
      m.progress->set_status("building L=" + std::to_string(w.length));
      m.progress->advance(0);
    }
  }
  const PromptSample ps = make_prompt(o, *m.tokenizer, w, depth, seed, hint);
  rec["target_tokens"] = ps.target_tokens;
  rec["measured_tokens"] = ps.measured_tokens;
  rec["length_of"] = ps.length_of;
  rec["prompt_tokens"] = ps.ids.size();
  rec["references"] = ps.references;
  rec["meta"] = ps.meta;
  rec["beyond_max_positions"] =
      m.beyond_positions(task, w.length, static_cast<int64_t>(ps.ids.size()) + o.max_new_tokens);
  return ps;
}

void PromptTask::finish(const EvalOptions& o, EvalModel& m, const PromptSample& ps, const DecodeResult& dr,
                        nlohmann::json& rec) const {
  std::vector<int64_t> shown;
  for (int64_t id : dr.tokens)
    if (std::find(m.stop_ids.begin(), m.stop_ids.end(), id) == m.stop_ids.end()) shown.push_back(id);
  const std::string output = m.tokenizer->decode(shown);
  rec["output"] = output;
  rec["new_tokens"] = dr.tokens.size();
  rec["prefill_seconds"] = dr.prefill_seconds;
  rec["decode_seconds"] = dr.decode_seconds;
  rec["state_bytes"] = dr.state_bytes;
  score(o, output, ps, rec);
}

bool PromptTask::plot(const EvalOptions& o, const std::filesystem::path& png, const std::string& variant,
                      const std::vector<Cell>& cells, const std::vector<std::string>& models) const {
  (void)o;
  return plot_heatmaps(png, name() + (variant.empty() ? "" : " " + variant) + " accuracy", cells, models);
}

std::unique_ptr<EvalTask> make_task(const std::string& name) {
  if (name == "passkey") return make_passkey_task();
  if (name == "niah") return make_niah_task();
  if (name == "babilong") return make_babilong_task();
  if (name == "ppl") return make_ppl_task();
  if (name == "longppl") return make_longppl_task();
  LAWCAT_CHECK(false, ConfigError, "eval: unknown --task '" << name << "' (passkey, niah, babilong, ppl or longppl)");
  return nullptr;
}

}  // namespace lawcat::eval
