#include "eval/eval_runner.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "eval/generate.h"
#include "eval/task.h"
#include "model/device.h"
#include "model/model_tokenizer.h"
#include "model/swap.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::eval {

// ---- decoding: the shared greedy loop (eval/generate.h) -------------------------------

namespace {

GenerateOptions greedy_options(int64_t max_new_tokens, const std::vector<int64_t>& stop_ids) {
  GenerateOptions g;
  g.max_new_tokens = max_new_tokens;
  g.sampling.greedy = true;
  g.stop_ids = stop_ids;
  g.warn_positions = false;  // the eval marks and warns about such lengths itself
  return g;
}

DecodeResult decode_result(GenerateResult&& r) {
  DecodeResult d;
  d.tokens = std::move(r.new_ids);
  d.stopped = r.stop_reason == "stop_id";
  d.prefill_seconds = r.prefill_seconds;
  d.decode_seconds = r.decode_seconds;
  d.state_bytes = r.state_bytes;
  return d;
}

}  // namespace

DecodeResult greedy_decode(model::LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt,
                           int64_t max_new_tokens, const std::vector<int64_t>& stop_ids) {
  LAWCAT_CHECK(!prompt.empty(), DataError, "greedy_decode: the prompt has no tokens");
  return decode_result(generate_ids(model, prompt, greedy_options(max_new_tokens, stop_ids)));
}

std::vector<DecodeResult> greedy_decode_batch(model::LlamaForCausalLMImpl& model,
                                              const std::vector<std::vector<int64_t>>& prompts,
                                              int64_t max_new_tokens, const std::vector<int64_t>& stop_ids) {
  std::vector<DecodeResult> out;
  for (GenerateResult& r : generate_batch(model, prompts, greedy_options(max_new_tokens, stop_ids)))
    out.push_back(decode_result(std::move(r)));
  return out;
}

bool all_layers_lawcat(model::LlamaForCausalLMImpl& model) {
  return static_cast<int64_t>(model::lawcat_layers(model).size()) == model.num_layers();
}

std::filesystem::path find_shared_data() {
  namespace sfs = std::filesystem;
  if (const char* env = std::getenv("LAWCAT_SHARED_DATA")) return sfs::exists(env) ? sfs::path(env) : sfs::path();
  std::error_code ec;
  if (sfs::is_directory("../shared/data", ec)) return sfs::canonical("../shared/data");
  sfs::path exe = sfs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (sfs::path p = exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
      if (sfs::is_directory(p / ".." / "shared" / "data", ec)) return sfs::canonical(p / ".." / "shared" / "data");
    }
  }
  return {};
}

namespace {

// Longest prompt or document eval builds (tokens).
constexpr int64_t kMaxEvalLength = int64_t(1) << 20;

std::string model_display_name(const std::string& spec) {
  std::filesystem::path p = model_dir_of(spec);
  if (p.filename().empty()) p = p.parent_path();
  // A training run's export (<run>/export) is named after its run.
  if (p.filename() == "export" && !p.parent_path().filename().empty()) p = p.parent_path();
  return p.filename().string() + (spec.rfind("swap:", 0) == 0 ? "+swap" : "");
}

// Unique display names, in --models order ("name#2" for a repeated one).
std::vector<std::string> display_names(const std::vector<std::string>& specs) {
  std::vector<std::string> names;
  for (const auto& m : specs) {
    const std::string name = model_display_name(m);
    std::string unique = name;
    for (int k = 2; std::find(names.begin(), names.end(), unique) != names.end(); ++k)
      unique = name + "#" + std::to_string(k);
    names.push_back(unique);
  }
  return names;
}

model::LlamaForCausalLM load_eval_model(const std::string& spec, const std::string& device, const std::string& dtype) {
  if (spec.rfind("swap:", 0) == 0) {
    const std::string dir = spec.substr(5);
    model::LlamaForCausalLM m = model::load_model(dir, device, dtype);
    LAWCAT_CHECK(model::lawcat_layers(*m).empty(), ConfigError,
                 "eval: " << spec << ": the model already has LAWCAT layers (drop the 'swap:' prefix)");
    at::manual_seed(0);  // the new LAWCAT parameters' random init: the same on every load
    model::swap_to_lawcat(*m, config::AttentionConfig{});
    for (auto& [n, t] : model::lawcat_parameters(*m)) t.set_data(t.to(m->device(), at::kFloat));
    return m;
  }
  return model::load_model(spec, device, dtype);
}

// The grid's shape: defaults and checks common to every task, then the task's own.
void resolve_options(EvalOptions& o, const EvalTask& task) {
  LAWCAT_CHECK(!o.models.empty(), ConfigError, "eval: --models needs at least one model directory");
  for (const auto& m : o.models) model::check_model_dir(model_dir_of(m));
  if (o.lengths.empty()) o.lengths = task.default_lengths();
  for (int64_t L : o.lengths) {
    LAWCAT_CHECK(L > 0 || (task.takes_zero_length() && L == 0), ConfigError,
                 "eval: --lengths must be positive (babilong also takes 0), got " << L);
    // Prompts and documents are built whole in memory: a typo's extra zeros must not eat the machine.
    LAWCAT_CHECK(L <= kMaxEvalLength, ConfigError,
                 "eval: --lengths " << L << " is above the limit of " << kMaxEvalLength << " tokens (1M)");
  }
  if (!task.has_depth()) o.depths = {-1};
  else if (o.depths.empty()) o.depths = {0, 25, 50, 75, 100};
  for (int64_t d : o.depths)
    LAWCAT_CHECK(!task.has_depth() || (d >= 0 && d <= 100), ConfigError,
                 "eval: --depths are percent in [0, 100], got " << d);
  LAWCAT_CHECK(o.samples > 0, ConfigError, "eval: --samples must be positive, got " << o.samples);
  task.defaults(o);
  if (o.out.empty()) o.out = std::filesystem::path("eval_out") / task.name();
  if (o.data.empty()) o.data = find_shared_data();
}

// Runs the cells of one model not yet in the store; returns its entry of <task>.json's "models".
nlohmann::json run_model(const EvalOptions& o, EvalTask& task, const std::string& spec, const std::string& name,
                         ResultStore& store, std::vector<std::string>& requested_keys, EvalSummary& summary) {
  const std::string& t = task.name();
  EvalModel m;
  m.spec = spec;
  m.name = name;
  m.dir = (spec.rfind("swap:", 0) == 0 ? "swap:" : "") + absolute_string(model_dir_of(spec));
  const std::vector<GridItem> work = task.cells(o, m.dir);
  std::vector<GridItem> todo;
  for (const auto& w : work) {
    requested_keys.push_back(w.key);
    if (!store.done(w.key)) todo.push_back(w);
  }
  summary.skipped += static_cast<int64_t>(work.size() - todo.size());
  nlohmann::json mj = {{"name", name}, {"dir", m.dir}};
  if (todo.empty()) {
    log::info("eval ", t, ": ", name, ": all ", work.size(), " results already in ", store.path().string());
    return mj;
  }
  if (todo.size() < work.size())
    log::info("eval ", t, ": ", name, ": resuming, ", work.size() - todo.size(), " of ", work.size(),
              " results already in ", store.path().string());

  auto tokenizer = model::load_model_tokenizer(model_dir_of(spec));
  model::LlamaForCausalLM model = load_eval_model(spec, o.device, o.dtype);
  model->eval();
  m.model = model.get();
  m.tokenizer = tokenizer.get();
  m.pure_lawcat = all_layers_lawcat(*model);
  m.max_positions = model->max_positions();
  mj["lawcat_layers"] = model::lawcat_layers(*model).size();
  mj["num_layers"] = model->num_layers();
  mj["max_position_embeddings"] = m.max_positions;
  mj["dtype"] = model::dtype_name(model->dtype());
  m.stop_ids = default_stop_ids(*model, *tokenizer);
  // The document start (ppl, longppl); -1 only when the model names none, which the ppl tasks refuse.
  m.bos = document_start_id(*model, *tokenizer);
  // Lengths past the positions of softmax attention: said once per length, before any prompt is built.
  for (int64_t L : o.lengths)
    if (!m.pure_lawcat && L > m.max_positions && m.warned_lengths.insert(L).second)
      log::warn("eval ", t, ": ", name, ": length ", L, " is beyond max_position_embeddings ", m.max_positions,
                " of its softmax attention; evaluating anyway (marked '*')");
  task.begin_model(o, m);

  std::optional<Progress> progress;
  if (o.progress) progress.emplace("eval " + t + " " + name, static_cast<int64_t>(todo.size()), task.progress_unit());
  m.progress = progress ? &*progress : nullptr;
  double score_sum = 0;
  int64_t scored = 0;
  const size_t batch = static_cast<size_t>(std::max<int64_t>(1, o.batch_size));
  for (size_t first = 0; first < todo.size(); first += batch) {
    // --batch-size prompts at a time (one: task.run, as always; more: task.run_batch).
    const std::vector<GridItem> group(todo.begin() + static_cast<std::ptrdiff_t>(first),
                                      todo.begin() + static_cast<std::ptrdiff_t>(std::min(todo.size(), first + batch)));
    std::vector<nlohmann::json> recs;
    for (const auto& w : group)
      recs.push_back({{"key", w.key},       {"task", t},          {"variant", w.variant},
                      {"model", name},      {"model_dir", m.dir}, {"length", w.length},
                      {"depth", w.depth},   {"sample", w.sample}, {"seed", o.seed},
                      {"max_new_tokens", o.max_new_tokens}});
    try {
      if (group.size() == 1) task.run(o, m, group[0], recs[0]);
      else task.run_batch(o, m, group, recs);
    } catch (const c10::OutOfMemoryError&) {
      log::warn("eval ", t, ": ", name, ": out of memory at length ", group[0].length, "; recorded as an error");
      for (auto& rec : recs) rec["error"] = "out of memory";
    }
    for (size_t gi = 0; gi < group.size(); ++gi) {
      const GridItem& w = group[gi];
      nlohmann::json& rec = recs[gi];
      store.append(rec);
      ++summary.ran;
      if (rec.contains("score") && rec["score"].is_number()) {
        score_sum += rec["score"].get<double>();
        ++scored;
      }
      if (progress) {
        std::string status = "L=" + std::to_string(w.length);
        if (w.depth >= 0) status += " d=" + std::to_string(w.depth);
        if (!w.variant.empty()) status = w.variant + " " + status;
        if (task.is_accuracy() && scored)
          status += " mean " + std::to_string(static_cast<int>(100.0 * score_sum / scored)) + "%";
        progress->set_status(status);
        progress->advance();
      }
    }
  }
  if (progress) progress->finish();
  return mj;
}

// The table, <task>.csv, <task>.json and one plot per variant, from the records of this request.
void report(const EvalOptions& o, const EvalTask& task, const ResultStore& store,
            const std::vector<std::string>& requested_keys, const nlohmann::json& models_json, EvalSummary& summary) {
  const std::string& t = task.name();
  std::vector<nlohmann::json> records;
  for (const auto& k : requested_keys)
    if (const nlohmann::json* r = store.find(k)) records.push_back(*r);
  summary.cells = aggregate(records, summary.model_names);
  summary.table = format_table(t, summary.cells, summary.model_names);
  if (o.print_table) std::printf("%s", summary.table.c_str());

  const std::filesystem::path csv = o.out / (t + ".csv"), json = o.out / (t + ".json");
  write_cells_csv(csv, t, summary.cells);
  nlohmann::json settings = {{"task", t},          {"variants", o.variants},  {"lengths", o.lengths},
                             {"samples", o.samples}, {"seed", o.seed},          {"device", o.device},
                             {"dtype", o.dtype},   {"max_new_tokens", o.max_new_tokens},
                             {"raw_probe", o.raw_probe}, {"ruler_singular", o.ruler_singular}};
  if (task.has_depth()) settings["depths"] = o.depths;
  task.settings(o, settings);
  nlohmann::json j = {{"settings", settings},
                      {"models", models_json},
                      {"cells", cells_to_json(summary.cells)},
                      {"table", summary.table},
                      {"results_file", store.path().string()}};
  fs::atomic_write_text(json, j.dump(2) + "\n");
  summary.files = {csv, json};
  if (!o.plot || summary.cells.empty()) return;
  for (const auto& v : o.variants) {
    std::vector<Cell> vc;
    for (const auto& c : summary.cells)
      if (c.variant == v) vc.push_back(c);
    if (vc.empty()) continue;
    const std::filesystem::path png = o.out / (t + (v.empty() ? "" : "_" + v) + ".png");
    if (task.plot(o, png, v, vc, summary.model_names)) summary.files.push_back(png);
  }
}

}  // namespace

EvalSummary run_eval(const EvalOptions& options) {
  std::unique_ptr<EvalTask> task = make_task(options.task);
  EvalOptions o = options;
  resolve_options(o, *task);
  task->load(o);  // the task's data, checked before any model is loaded

  EvalSummary summary;
  summary.out = o.out;
  std::filesystem::create_directories(o.out);
  const fs::DirLock out_lock(o.out);  // one lawcat eval per output folder
  ResultStore store(o.out / "results.jsonl");
  summary.model_names = display_names(o.models);
  std::vector<std::string> requested_keys;
  nlohmann::json models_json = nlohmann::json::array();
  for (size_t mi = 0; mi < o.models.size(); ++mi)
    models_json.push_back(run_model(o, *task, o.models[mi], summary.model_names[mi], store, requested_keys, summary));
  report(o, *task, store, requested_keys, models_json, summary);
  return summary;
}

}  // namespace lawcat::eval
