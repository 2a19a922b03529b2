#include "eval/eval_runner.h"

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>

#include "eval/babilong.h"
#include "eval/eval_util.h"
#include "eval/long_ppl.h"
#include "eval/niah.h"
#include "eval/passkey.h"
#include "eval/position_ppl.h"
#include "model/swap.h"
#include "model/model_tokenizer.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/progress.h"

namespace lawcat::eval {

// ---- decoding ----------------------------------------------------------------------

DecodeResult greedy_decode(model::LlamaForCausalLMImpl& model, const std::vector<int64_t>& prompt,
                           int64_t max_new_tokens, const std::vector<int64_t>& stop_ids) {
  LAWCAT_CHECK(!prompt.empty(), DataError, "greedy_decode: the prompt has no tokens");
  torch::NoGradGuard no_grad;
  using clock = std::chrono::steady_clock;
  DecodeResult r;
  auto t0 = clock::now();
  model::DecodeState state = model.new_decode_state(1);
  const auto ids_opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor input = at::tensor(prompt, ids_opts).unsqueeze(0);  // [1, T]
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    at::Tensor hidden = model.hidden_states(input, &state);                       // [1, T, D]
    at::Tensor logits = model.logits(hidden.select(1, hidden.size(1) - 1));      // [1, V]
    const int64_t next = logits.to(at::kFloat).argmax(-1).item<int64_t>();
    if (step == 0) {
      auto t1 = clock::now();
      r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
      t0 = t1;
    }
    r.tokens.push_back(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) {
      r.stopped = true;
      break;
    }
    input = at::tensor(std::vector<int64_t>{next}, ids_opts).unsqueeze(0);  // [1, 1]
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  r.state_bytes = state.memory_bytes();
  return r;
}

std::vector<int64_t> stop_ids_for(const StopIdsSource& s) {
  std::vector<int64_t> ids;
  auto add = [&](int64_t id) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  for (int64_t id : s.config_eos) add(id);
  add(s.tokenizer_eos);
  add(s.tokenizer_bos);
  return ids;
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

// ---- the eval loop -------------------------------------------------------------------

namespace {

struct WorkItem {
  std::string variant;  // as shown (e.g. "qa2-raw")
  int64_t length = 0, depth = -1, sample = 0;
  int64_t babi = -1;    // babilong: bAbI question index
  std::string key;
};

struct TaskData {
  std::map<std::string, NiahData> niah;                       // by variant
  std::map<std::string, std::vector<BabiSample>> babi;        // by task (qa1, qa2, qa3): the selected samples
  std::vector<std::string> background;                        // babilong
};

std::string base_variant(const std::string& v) {  // "qa2-raw" -> "qa2"
  const auto p = v.find("-raw");
  return p == std::string::npos ? v : v.substr(0, p);
}

std::vector<int64_t> default_lengths(const std::string& task) {
  if (task == "passkey") return {1024, 2048, 4096, 8192, 16384, 32768};
  if (task == "niah") return {1024, 2048, 4096, 8192};
  if (task == "babilong") return {0, 1024, 2048, 4096, 8192, 16384};
  if (task == "longppl") return {32768};
  return {512, 1024, 2048, 4096, 8192};
}

int64_t default_max_new(const std::string& task, bool raw_probe) {
  if (task == "passkey") return 10;
  if (task == "niah") return 128;  // RULER tokens_to_generate
  return raw_probe ? 5 : 20;       // BABILong generates up to 20 tokens
}

// "swap:DIR" (the teacher in DIR swapped to LAWCAT, undistilled) -> DIR.
std::string model_dir_of(const std::string& spec) { return spec.rfind("swap:", 0) == 0 ? spec.substr(5) : spec; }

std::string model_display_name(const std::string& spec) {
  std::filesystem::path p = model_dir_of(spec);
  if (p.filename().empty()) p = p.parent_path();
  // A training run's export (<run>/export) is named after its run.
  if (p.filename() == "export" && !p.parent_path().filename().empty()) p = p.parent_path();
  return p.filename().string() + (spec.rfind("swap:", 0) == 0 ? "+swap" : "");
}

std::string absolute_string(const std::filesystem::path& p) {
  std::error_code ec;
  auto a = std::filesystem::weakly_canonical(p, ec);
  return (ec ? std::filesystem::absolute(p) : a).string();
}

}  // namespace

static model::LlamaForCausalLM load_eval_model(const std::string& spec, const std::string& device, const std::string& dtype) {
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

// Longest prompt or document eval builds (tokens).
constexpr int64_t kMaxEvalLength = int64_t(1) << 20;
// Prompts at least this long are announced before they are built.
constexpr int64_t kLongPrompt = int64_t(1) << 16;

EvalSummary run_eval(const EvalOptions& options) {
  EvalOptions o = options;
  const std::string& task = o.task;
  LAWCAT_CHECK(task == "passkey" || task == "niah" || task == "babilong" || task == "ppl" || task == "longppl",
               ConfigError, "eval: unknown --task '" << task << "' (passkey, niah, babilong, ppl or longppl)");
  LAWCAT_CHECK(!o.models.empty(), ConfigError, "eval: --models needs at least one model directory");
  for (const auto& m : o.models)
    LAWCAT_CHECK(std::filesystem::is_directory(model_dir_of(m)), CheckpointError,
                 model_dir_of(m) << ": model directory not found");
  if (o.lengths.empty()) o.lengths = default_lengths(task);
  for (int64_t L : o.lengths) {
    LAWCAT_CHECK(L > 0 || (task == "babilong" && L == 0), ConfigError,
                 "eval: --lengths must be positive (babilong also takes 0), got " << L);
    // Prompts and documents are built whole in memory: a typo's extra zeros must not eat the machine.
    LAWCAT_CHECK(L <= kMaxEvalLength, ConfigError,
                 "eval: --lengths " << L << " is above the limit of " << kMaxEvalLength << " tokens (1M)");
  }
  const bool has_depth = task == "passkey" || task == "niah";
  if (!has_depth) {
    o.depths = {-1};
  } else if (o.depths.empty()) {
    o.depths = {0, 25, 50, 75, 100};
  }
  for (int64_t d : o.depths)
    LAWCAT_CHECK(!has_depth || (d >= 0 && d <= 100), ConfigError, "eval: --depths are percent in [0, 100], got " << d);
  LAWCAT_CHECK(o.samples > 0, ConfigError, "eval: --samples must be positive, got " << o.samples);
  if (o.variants.empty()) {
    if (task == "niah") o.variants = {"s-niah-1"};
    if (task == "babilong") o.variants = {"qa2"};
    if (task == "passkey" || task == "ppl" || task == "longppl") o.variants = {""};
  }
  if (task == "longppl") {
    LAWCAT_CHECK(o.lengths.size() == 1 && o.lengths[0] >= 2 * o.bucket && o.bucket > 0, ConfigError,
                 "eval --task longppl: give one --lengths value (the document length, e.g. 32768) of at least "
                 "two --bucket sizes (" << o.bucket << ")");
  }
  if (task == "passkey" || task == "ppl" || task == "longppl")
    LAWCAT_CHECK(o.variants.size() == 1 && o.variants[0].empty(), ConfigError,
                 "eval: --variant is for niah (s-niah-1/2/3) and babilong (qa2/qa3)");
  if (task == "niah")
    for (auto& v : o.variants) v = niah_variant(v).name;
  if (task == "babilong")
    for (auto& v : o.variants) {
      babilong_prompt(v);  // validates
      if (o.raw_probe) v += "-raw";
    }
  if (o.max_new_tokens <= 0) o.max_new_tokens = default_max_new(task, o.raw_probe);
  if (task == "niah") o.max_new_tokens = std::min<int64_t>(o.max_new_tokens, 128);
  if (o.out.empty()) o.out = std::filesystem::path("eval_out") / task;
  if (o.data.empty()) o.data = find_shared_data();

  // ---- task data, checked before any model is loaded ----
  TaskData data;
  if (task == "niah" || task == "babilong") {
    LAWCAT_CHECK(!o.data.empty() && std::filesystem::is_directory(o.data), DataError,
                 (o.data.empty() ? std::string("../shared/data") : o.data.string())
                     << ": eval data folder not found (pass --data DIR or set $LAWCAT_SHARED_DATA)");
  }
  if (task == "niah")
    for (const auto& v : o.variants) data.niah[v] = load_niah_data(o.data / "eval" / "ruler", niah_variant(v));
  if (task == "babilong") {
    data.background = load_background_sentences(o.data / "corpora" / "moby_dick" / "moby_dick.txt");
    for (const auto& v : o.variants) {
      const std::string t = base_variant(v);
      if (data.babi.count(t)) continue;
      const auto file = babi_test_file(o.data / "eval" / "babi" / "tasks_1-20_v1-2" / "en", t);
      std::vector<BabiSample> all = load_babi(file);
      std::vector<int64_t> idx;
      const auto idx_file = o.data / "eval" / "babilong" / "test_100_idxs.json";
      if (std::filesystem::exists(idx_file)) {
        idx = load_babilong_indices(idx_file, t);
      } else {
        log::warn(idx_file.string(), " not found: using the first questions of ", file.string());
        for (int64_t i = 0; i < static_cast<int64_t>(all.size()); ++i) idx.push_back(i);
      }
      std::vector<BabiSample> chosen;
      for (int64_t i : idx) {
        if (static_cast<int64_t>(chosen.size()) >= o.samples) break;
        LAWCAT_CHECK(i < static_cast<int64_t>(all.size()), DataError,
                     idx_file.string() << ": " << t << " index " << i << " is out of range (" << file.string()
                                       << " has " << all.size() << " questions)");
        chosen.push_back(all[static_cast<size_t>(i)]);
      }
      data.babi[t] = std::move(chosen);
    }
  }
  LongPplOptions ppl_opt;
  ppl_opt.max_tokens = o.ppl_max_tokens;
  ppl_opt.documents = o.ppl_documents;
  if (task == "ppl" || task == "longppl") {
    LAWCAT_CHECK(!o.text.empty(), ConfigError, "eval --task " << task << " needs --text FILE");
    LAWCAT_CHECK(std::filesystem::is_regular_file(o.text), DataError,
                 o.text.string() << ": text file for the " << task << " task not found");
  }

  EvalSummary summary;
  summary.out = o.out;
  std::filesystem::create_directories(o.out);
  const fs::DirLock out_lock(o.out);  // one lawcat eval per output folder
  ResultStore store(o.out / "results.jsonl");

  // Unique display names.
  for (const auto& m : o.models) {
    std::string name = model_display_name(m);
    std::string unique = name;
    for (int k = 2; std::find(summary.model_names.begin(), summary.model_names.end(), unique) !=
                    summary.model_names.end();
         ++k)
      unique = name + "#" + std::to_string(k);
    summary.model_names.push_back(unique);
  }

  std::vector<std::string> requested_keys;
  nlohmann::json models_json = nlohmann::json::array();
  for (size_t mi = 0; mi < o.models.size(); ++mi) {
    const std::string dir = (o.models[mi].rfind("swap:", 0) == 0 ? "swap:" : "") +
                            absolute_string(model_dir_of(o.models[mi]));
    const std::string name = summary.model_names[mi];
    // The work list of this model.
    std::vector<WorkItem> work;
    for (const auto& v : o.variants) {
      for (int64_t L : o.lengths) {
        if (task == "longppl") {  // one item per (document, position bucket); length = the bucket's end
          for (int64_t s = 0; s < o.samples; ++s)
            for (int64_t b = 0; b < L / o.bucket; ++b) {
              WorkItem w{v, (b + 1) * o.bucket, -1, s, -1, ""};
              w.key = nlohmann::json::array({task, dir, L, o.bucket, absolute_string(o.text), s, b}).dump();
              work.push_back(w);
            }
          continue;
        }
        if (task == "ppl") {
          WorkItem w{v, L, -1, 0, -1, ""};
          w.key = nlohmann::json::array({task, v, dir, L, absolute_string(o.text), o.ppl_max_tokens, o.ppl_documents})
                      .dump();
          work.push_back(w);
          continue;
        }
        for (int64_t d : o.depths) {
          const int64_t n = task == "babilong" ? static_cast<int64_t>(data.babi[base_variant(v)].size()) : o.samples;
          for (int64_t s = 0; s < n; ++s) {
            WorkItem w{v, L, d, s, -1, ""};
            if (task == "babilong") w.babi = data.babi[base_variant(v)][static_cast<size_t>(s)].index;
            w.key = nlohmann::json::array({task, v, dir, L, d, task == "babilong" ? w.babi : s, o.seed,
                                           o.max_new_tokens, o.ruler_singular})
                        .dump();
            work.push_back(w);
          }
        }
      }
    }
    std::vector<WorkItem> todo;
    for (const auto& w : work) {
      requested_keys.push_back(w.key);
      if (!store.done(w.key)) todo.push_back(w);
    }
    summary.skipped += static_cast<int64_t>(work.size() - todo.size());
    nlohmann::json mj = {{"name", name}, {"dir", dir}};
    if (todo.empty()) {
      log::info("eval ", task, ": ", name, ": all ", work.size(), " results already in ", store.path().string());
      models_json.push_back(mj);
      continue;
    }
    if (!todo.empty() && todo.size() < work.size())
      log::info("eval ", task, ": ", name, ": resuming, ", work.size() - todo.size(), " of ", work.size(),
                " results already in ", store.path().string());

    auto tokenizer = model::load_model_tokenizer(model_dir_of(o.models[mi]));
    model::LlamaForCausalLM model = load_eval_model(o.models[mi], o.device, o.dtype);
    model->eval();
    const bool pure_lawcat = all_layers_lawcat(*model);
    const int64_t max_pos = model->max_positions();
    mj["lawcat_layers"] = model::lawcat_layers(*model).size();
    mj["num_layers"] = model->num_layers();
    mj["max_position_embeddings"] = max_pos;
    mj["dtype"] = model::dtype_name(model->dtype());
    models_json.push_back(mj);
    const std::vector<int64_t> stop =
        stop_ids_for({model->config().eos_token_ids, tokenizer->eos_id(), tokenizer->bos_id()});
    const int64_t bos = tokenizer->bos_id() >= 0 ? tokenizer->bos_id() : model->config().bos_token_id;

    // Lengths past the positions of softmax attention: said once per length, before any prompt is built.
    std::set<int64_t> warned_lengths;
    for (int64_t L : o.lengths)
      if (!pure_lawcat && L > max_pos && warned_lengths.insert(L).second)
        log::warn("eval ", task, ": ", name, ": length ", L, " is beyond max_position_embeddings ", max_pos,
                  " of its softmax attention; evaluating anyway (marked '*')");

    std::optional<std::vector<std::vector<int64_t>>> ppl_streams;
    if (task == "ppl") ppl_streams = tokenize_for_long_ppl(*tokenizer, o.text, ppl_opt);
    std::vector<std::vector<int64_t>> long_docs;
    std::map<int64_t, PositionNll> doc_nll;  // longppl: each document is scored once for all its buckets
    if (task == "longppl") {
      long_docs = long_documents(*tokenizer, o.text, o.lengths[0], bos, o.samples);
      LAWCAT_CHECK(static_cast<int64_t>(long_docs.size()) >= o.samples, DataError,
                   o.text.string() << ": only " << long_docs.size() << " documents have " << o.lengths[0]
                                   << " tokens; --samples asks for " << o.samples);
    }

    std::map<std::string, int64_t> hints;  // fitted haystack size per (variant, length, depth)
    std::optional<Progress> progress;
    if (o.progress) progress.emplace("eval " + task + " " + name, static_cast<int64_t>(todo.size()),
                                     task == "ppl" ? "ctx" : task == "longppl" ? "bucket" : "prompt");
    double score_sum = 0;
    int64_t scored = 0;
    for (const auto& w : todo) {
      nlohmann::json rec = {{"key", w.key},       {"task", task},       {"variant", w.variant},
                            {"model", name},      {"model_dir", dir},   {"length", w.length},
                            {"depth", w.depth},   {"sample", w.sample}, {"seed", o.seed},
                            {"max_new_tokens", o.max_new_tokens}};
      auto warn_positions = [&](int64_t needed) {
        const bool beyond = !pure_lawcat && needed > max_pos;
        if (beyond && warned_lengths.insert(w.length).second)
          log::warn("eval ", task, ": ", name, ": length ", w.length, " needs ", needed,
                    " positions, beyond max_position_embeddings ", max_pos,
                    " of its softmax attention; evaluating anyway (marked '*')");
        return beyond;
      };
      // NaN / Inf weights make every score meaningless: stop, naming the model.
      auto check_finite_nll = [&](double nll) {
        LAWCAT_CHECK(std::isfinite(nll), DataError,
                     "eval " << task << ": model " << o.models[mi] << ": the mean NLL at length " << w.length << " is "
                             << nll << " (not finite): the model's weights or activations hold NaN or Inf "
                                       "(check the weights; try --dtype float32)");
      };
      try {
        if (task == "longppl") {
          rec["beyond_max_positions"] = warn_positions(o.lengths[0]);
          if (!doc_nll.count(w.sample))
            doc_nll[w.sample] = position_nll(*model, long_docs[static_cast<size_t>(w.sample)], o.bucket);
          const PositionNll& pn = doc_nll[w.sample];
          const size_t b = static_cast<size_t>(w.length / o.bucket - 1);
          rec["score"] = pn.mean(b);
          rec["nll"] = pn.mean(b);
          rec["tokens"] = pn.tokens[b];
          rec["seconds"] = pn.seconds;
          rec["measured_tokens"] = static_cast<double>(w.length);
          rec["text"] = absolute_string(o.text);
          rec["document_length"] = o.lengths[0];
          check_finite_nll(pn.mean(b));
        } else if (task == "ppl") {
          rec["beyond_max_positions"] = warn_positions(w.length);  // BOS + ctx - 1 inputs
          PerplexityResult pr = long_ppl(*model, *ppl_streams, w.length, bos, false);
          rec["score"] = pr.perplexity();
          rec["nll"] = pr.mean_nll();
          rec["tokens"] = pr.tokens;
          rec["windows"] = pr.windows;
          rec["seconds"] = pr.seconds;
          rec["measured_tokens"] = static_cast<double>(w.length);
          rec["text"] = absolute_string(o.text);
          check_finite_nll(rec["nll"].get<double>());
        } else {
          const std::string hint_key = w.variant + "|" + std::to_string(w.length) + "|" + std::to_string(w.depth);
          int64_t* hint = &hints[hint_key];
          const double depth = w.depth >= 0 ? static_cast<double>(w.depth) / 100.0 : 0.0;
          const uint64_t seed = sample_seed(o.seed, task + w.variant, w.length, w.depth, w.babi >= 0 ? w.babi : w.sample);
          PromptSample ps;
          if (w.length >= kLongPrompt) {  // building takes seconds to minutes: say so
            log::info("eval ", task, ": ", name, ": building a ", w.length, "-token prompt", w.depth >= 0 ? " at depth " + std::to_string(w.depth) + "%" : std::string());
            if (progress) {
              progress->set_status("building L=" + std::to_string(w.length));
              progress->advance(0);
            }
          }
          if (task == "passkey") {
            ps = make_passkey_sample(*tokenizer, w.length, depth, seed, hint);
          } else if (task == "niah") {
            ps = make_niah_sample(*tokenizer, data.niah[w.variant], niah_variant(w.variant), w.length, depth, seed,
                                  hint, o.ruler_singular);
          } else {
            const std::string t = base_variant(w.variant);
            ps = make_babilong_sample(*tokenizer, t, data.babi[t][static_cast<size_t>(w.sample)], data.background,
                                      w.length, seed, o.raw_probe, hint);
          }
          rec["target_tokens"] = ps.target_tokens;
          rec["measured_tokens"] = ps.measured_tokens;
          rec["length_of"] = ps.length_of;
          rec["prompt_tokens"] = ps.ids.size();
          rec["references"] = ps.references;
          rec["meta"] = ps.meta;
          rec["beyond_max_positions"] = warn_positions(static_cast<int64_t>(ps.ids.size()) + o.max_new_tokens);
          DecodeResult dr = greedy_decode(*model, ps.ids, o.max_new_tokens, stop);
          std::vector<int64_t> shown;
          for (int64_t id : dr.tokens)
            if (std::find(stop.begin(), stop.end(), id) == stop.end()) shown.push_back(id);
          const std::string output = tokenizer->decode(shown);
          rec["output"] = output;
          rec["new_tokens"] = dr.tokens.size();
          rec["prefill_seconds"] = dr.prefill_seconds;
          rec["decode_seconds"] = dr.decode_seconds;
          rec["state_bytes"] = dr.state_bytes;
          if (task == "passkey") {
            rec["score"] = passkey_correct(output, ps.references[0]) ? 1.0 : 0.0;
          } else if (task == "niah") {
            rec["score"] = niah_score(output, ps.references);
          } else if (o.raw_probe) {
            rec["score"] = raw_probe_score(output, ps.references[0]);
          } else {
            const BabilongScore bs = babilong_score(output, ps.references[0], ps.meta["question"].get<std::string>());
            rec["score"] = bs.score;
            rec["strict"] = bs.strict;
          }
        }
      } catch (const c10::OutOfMemoryError& e) {
        log::warn("eval ", task, ": ", name, ": out of memory at length ", w.length, "; recorded as an error");
        rec["error"] = "out of memory";
      }
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
        if (task != "ppl" && task != "longppl" && scored) status += " mean " + std::to_string(static_cast<int>(100.0 * score_sum / scored)) + "%";
        progress->set_status(status);
        progress->advance();
      }
    }
    if (progress) progress->finish();
  }

  // ---- report: the records of this request only ----
  std::vector<nlohmann::json> records;
  for (const auto& k : requested_keys)
    if (const nlohmann::json* r = store.find(k)) records.push_back(*r);
  summary.cells = aggregate(records, summary.model_names);
  summary.table = format_table(task, summary.cells, summary.model_names);
  if (o.print_table) std::printf("%s", summary.table.c_str());

  const std::filesystem::path csv = o.out / (task + ".csv"), json = o.out / (task + ".json");
  write_cells_csv(csv, task, summary.cells);
  nlohmann::json settings = {{"task", task},          {"variants", o.variants},  {"lengths", o.lengths},
                             {"samples", o.samples},  {"seed", o.seed},          {"device", o.device},
                             {"dtype", o.dtype},      {"max_new_tokens", o.max_new_tokens},
                             {"raw_probe", o.raw_probe}, {"ruler_singular", o.ruler_singular}};
  if (has_depth) settings["depths"] = o.depths;
  if (task == "longppl") {
    settings["text"] = absolute_string(o.text);
    settings["bucket"] = o.bucket;
  }
  if (task == "ppl") {
    settings["text"] = absolute_string(o.text);
    settings["ppl_max_tokens"] = o.ppl_max_tokens;
    settings["ppl_documents"] = o.ppl_documents;
  }
  nlohmann::json j = {{"settings", settings},
                      {"models", models_json},
                      {"cells", cells_to_json(summary.cells)},
                      {"table", summary.table},
                      {"results_file", store.path().string()}};
  fs::atomic_write_text(json, j.dump(2) + "\n");
  summary.files = {csv, json};
  if (o.plot && !summary.cells.empty()) {
    for (const auto& v : o.variants) {
      std::vector<Cell> vc;
      for (const auto& c : summary.cells)
        if (c.variant == v) vc.push_back(c);
      if (vc.empty()) continue;
      const std::filesystem::path png = o.out / (task + (v.empty() ? "" : "_" + v) + ".png");
      bool ok = false;
      if (has_depth) {
        ok = plot_heatmaps(png, task + (v.empty() ? "" : " " + v) + " accuracy", vc, summary.model_names);
      } else if (task == "ppl") {
        ok = plot_lines(png, "perplexity vs context length", "perplexity", vc, summary.model_names, false);
      } else if (task == "longppl") {
        ok = plot_lines(png, "NLL by position (mean per " + std::to_string(o.bucket) + "-token bucket)",
                        "mean NLL (nats/token)", vc, summary.model_names, false);
      } else {
        ok = plot_lines(png, "babilong " + v + " accuracy", "accuracy (%)", vc, summary.model_names, true);
      }
      if (ok) summary.files.push_back(png);
    }
  }
  return summary;
}

}  // namespace lawcat::eval
