// `lawcat sweep FILE`: a grid of runs over a base config (e.g. gate rank x conv
// width), each in its own directory, resumable (finished runs are skipped if asked
// for with the config they ran with, interrupted ones resumed), then a results table
// (CSV + Markdown) and a plot.
//
// Sweep file (YAML):
//   base: configs/quickstart.yaml          the run config every run starts from
//   output_dir: runs/sweep                 runs go to <output_dir>/<key-value_...>
//   set: [lora.enabled=false]              overrides for every run (optional)
//   grid:                                  every combination, in this order
//     attention.gate_rank: [16, 32, 64]
//     attention.conv_width: [0, 2, 4, 8]
//   variants:                              named bundles of overrides (optional; with a grid,
//     lawcat: []                           every variant runs every grid point)
//     lolcats: [attention.conv_width=0, attention.gate=false, attention.window=64]
//   metric: distill.best_val               column the plot shows (stage.field of summary.json)
//
// `--shard i/n` runs only runs i, i+n, i+2n, ... (0-based), so n processes can share
// one GPU; a last call without --shard skips the finished runs and writes the table.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include "cli/command.h"
#include "config/yaml.h"
#include "eval/eval_util.h"
#include "train/loop.h"
#include "train/recipe.h"
#include "util/error.h"
#include "util/format.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/plot.h"

namespace {
namespace stdfs = std::filesystem;
using lawcat::ConfigError;

struct Sweep {
  std::string base, output_dir, metric = "distill.best_val";
  std::vector<std::string> set;
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;  // key -> values (YAML scalars)
  std::vector<std::pair<std::string, std::vector<std::string>>> variants;  // name -> overrides
};

// Metrics a sweep can plot: a stage's numeric summary.json field, or the derived
// reduction (init_val / best_val) and ppl (exp best_val); see metric_value.
const char* const kMetricStages[] = {"pretrain", "distill", "lora"};
const char* const kMetricFields[] = {"init_val", "best_val", "final_val", "final_train", "final_lr", "steps",
                                     "tokens", "best_step", "wall_s", "tokens_per_s", "reduction", "ppl"};
bool known_metric(const std::string& metric) {
  const auto dot = metric.find('.');
  if (dot == std::string::npos) return false;
  const std::string stage = metric.substr(0, dot), field = metric.substr(dot + 1);
  return std::any_of(std::begin(kMetricStages), std::end(kMetricStages), [&](const char* s) { return stage == s; }) &&
         std::any_of(std::begin(kMetricFields), std::end(kMetricFields), [&](const char* f) { return field == f; });
}
std::string known_metrics() {
  std::string out;
  for (const char* f : kMetricFields) out += std::string(out.empty() ? "" : ", ") + f;
  return "<pretrain|distill|lora>.<" + out + ">";
}

std::string at_of(const std::string& file, const YAML::Node& n) {
  auto m = n.Mark();
  return m.is_null() ? file : file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

Sweep read_sweep(const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(lawcat::fs::read_text(file));
  } catch (const YAML::ParserException& e) {
    throw ConfigError(file + ":" + std::to_string(e.mark.line + 1) + ": YAML syntax error: " + e.msg);
  }
  std::vector<std::string> errors;
  Sweep s;
  if (!root.IsMap()) throw ConfigError(file + ": expected a mapping with base, output_dir, grid");
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const YAML::Node v = it->second;
    try {
      if (key == "base") s.base = v.as<std::string>();
      else if (key == "output_dir") s.output_dir = v.as<std::string>();
      else if (key == "metric") {
        s.metric = v.as<std::string>();
        if (!known_metric(s.metric))
          errors.push_back(at_of(file, v) + ": unknown metric '" + s.metric + "' (known: " + known_metrics() + ")");
      }
      else if (key == "set") {
        if (v.IsScalar()) s.set.push_back(v.as<std::string>());
        else for (const auto& e : v) s.set.push_back(e.as<std::string>());
      } else if (key == "grid") {
        if (!v.IsMap()) {
          errors.push_back(at_of(file, v) + ": 'grid' must map config keys to lists of values");
          continue;
        }
        for (auto g = v.begin(); g != v.end(); ++g) {
          std::vector<std::string> values;
          // A named copy: `g->second` belongs to a temporary proxy that dies before a range-for's
          // body runs (ASan: stack-use-after-scope in YAML::Node::begin, docs/reliability.md).
          const YAML::Node gv = g->second;
          if (gv.IsSequence())
            for (const auto& e : gv) values.push_back(YAML::Dump(e));
          else values.push_back(YAML::Dump(g->second));
          if (values.empty()) errors.push_back(at_of(file, g->second) + ": grid key '" + g->first.as<std::string>() + "' has no values");
          s.grid.emplace_back(g->first.as<std::string>(), values);
        }
      } else if (key == "variants") {
        if (!v.IsMap()) {
          errors.push_back(at_of(file, v) + ": 'variants' must map names to lists of key=value overrides");
          continue;
        }
        for (auto g = v.begin(); g != v.end(); ++g) {
          std::vector<std::string> ov;
          const YAML::Node gv = g->second;  // as above: not a range over the proxy's member
          if (gv.IsSequence())
            for (const auto& e : gv) ov.push_back(e.as<std::string>());
          else if (!g->second.IsNull())
            ov.push_back(g->second.as<std::string>());
          s.variants.emplace_back(g->first.as<std::string>(), ov);
        }
      } else {
        errors.push_back(at_of(file, it->first) + ": unknown key '" + key +
                         "' (known: base, output_dir, set, grid, variants, metric)");
      }
    } catch (const YAML::Exception& e) {
      errors.push_back(at_of(file, v) + ": key '" + key + "': " + e.msg);
    }
  }
  if (s.base.empty()) errors.push_back(file + ": 'base' (the run config) is required");
  if (s.output_dir.empty()) errors.push_back(file + ": 'output_dir' is required");
  if (s.grid.empty() && s.variants.empty()) errors.push_back(file + ": 'grid' and 'variants' are both empty");
  if (!errors.empty()) {
    std::string msg = std::to_string(errors.size()) + " problem(s) in sweep " + file + ":";
    for (auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
  return s;
}

std::string leaf(const std::string& key) { return key.substr(key.rfind('.') + 1); }
std::string safe(std::string v) {
  for (char& c : v)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return v;
}

struct Run {
  std::string name;
  std::string variant;              // name of the variant ("" without variants)
  std::vector<std::string> values;  // one per grid key
  nlohmann::json summary;           // summary.json (empty if not run)
  std::string status;               // done, skipped, failed: ...
};

double stage_value(const nlohmann::json& summary, const std::string& stage, const std::string& field) {
  if (!summary.contains("stages")) return NAN;
  for (const auto& s : summary["stages"])
    if (s.value("stage", "") == stage && s.contains(field) && s[field].is_number()) return s[field].get<double>();
  return NAN;
}

// "distill.best_val" etc, plus derived "distill.reduction" and "lora.ppl".
double metric_value(const nlohmann::json& summary, const std::string& metric) {
  const auto dot = metric.find('.');
  const std::string stage = metric.substr(0, dot), field = dot == std::string::npos ? "" : metric.substr(dot + 1);
  if (field == "reduction") return stage_value(summary, stage, "init_val") / stage_value(summary, stage, "best_val");
  if (field == "ppl") return std::exp(stage_value(summary, stage, "best_val"));
  return stage_value(summary, stage, field);
}

std::string num(double v, int prec = 4) { return std::isfinite(v) ? lawcat::format::significant(v, prec) : ""; }

// The runs: variants (in file order, those --only names) x the cartesian product of the
// grid, first key slowest.
std::vector<Run> plan_runs(const Sweep& s, const std::vector<std::string>& only, const std::string& file) {
  std::vector<Run> runs;
  if (s.variants.empty()) runs.resize(1);
  // --only names variants; a grid-only sweep has none to pick (its runs are the grid points).
  LAWCAT_CHECK(only.empty() || !s.variants.empty(), ConfigError,
               "--only picks variants, and " << file << " has no 'variants:' (its runs are the grid points: "
                                             "--shard i/n runs a part of them)");
  std::string names;
  for (const auto& v : s.variants) names += (names.empty() ? "" : ", ") + v.first;
  for (const auto& name : only)
    LAWCAT_CHECK(std::any_of(s.variants.begin(), s.variants.end(), [&](const auto& v) { return v.first == name; }),
                 ConfigError, "--only: '" << name << "' is not a variant of " << file << " (variants: " << names << ")");
  for (const auto& [name, ov] : s.variants) {
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    Run r;
    r.name = name;
    r.variant = name;
    runs.push_back(r);
  }
  for (const auto& [key, values] : s.grid) {
    std::vector<Run> next;
    for (const auto& r : runs)
      for (const auto& v : values) {
        Run n = r;
        n.values.push_back(v);
        n.name += (n.name.empty() ? "" : "_") + leaf(key) + "-" + safe(v);
        next.push_back(n);
      }
    runs = next;
  }
  return runs;
}

// --shard i/n -> (i, n): whole numbers with 0 <= i < n, nothing else ("0/2/3" is not 0/2).
// Checked by CLI11 (a usage error, exit 2); (0, 1) without --shard.
std::optional<std::pair<int64_t, int64_t>> parse_shard(const std::string& shard) {
  if (shard.empty()) return std::pair<int64_t, int64_t>{0, 1};
  auto whole = [](const std::string& t, int64_t& v) {  // at most 9 digits: no overflow
    if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    v = std::stoll(t);
    return true;
  };
  const auto slash = shard.find('/');
  int64_t i = 0, n = 0;
  if (slash == std::string::npos || !whole(shard.substr(0, slash), i) || !whole(shard.substr(slash + 1), n) || i >= n)
    return std::nullopt;
  return std::pair<int64_t, int64_t>{i, n};
}

// One sweep invocation: the sweep file, the command line's --set, where the runs go.
struct SweepJob {
  Sweep s;
  std::string file;
  std::vector<std::string> extra;
  stdfs::path root;

  // A run's overrides: the sweep's set, its variant, --set, its grid values, its folder.
  std::vector<std::string> overrides_of(const Run& r, const std::string& base_cache_dir) const {
    std::vector<std::string> ov = s.set;
    for (const auto& [name, vo] : s.variants)
      if (name == r.variant) ov.insert(ov.end(), vo.begin(), vo.end());
    ov.insert(ov.end(), extra.begin(), extra.end());
    for (size_t k = 0; k < s.grid.size(); ++k) ov.push_back(s.grid[k].first + "=" + r.values[k]);
    ov.push_back("output_dir=" + (root / r.name).string());
    if (base_cache_dir.empty()) ov.push_back("data.cache_dir=" + (root / "cache").string());
    return ov;
  }
};

// summary.json of a run that finished (not interrupted, exported); nothing otherwise.
std::optional<nlohmann::json> finished_summary(const stdfs::path& dir) {
  std::error_code ec;
  if (!stdfs::exists(dir / "summary.json", ec)) return std::nullopt;
  auto j = nlohmann::json::parse(lawcat::fs::read_text(dir / "summary.json"));
  if (j.value("interrupted", true) || j.value("export_dir", std::string()).empty()) return std::nullopt;
  return j;
}

// The stages the config asked for now enables that the finished run did not train (e.g.
// lora.enabled=true after a stage-1-only sweep): such a run is resumed and trains them, as
// `distill --resume` would, unless one comes before a stage the run did train (the later
// stage's weights were trained without it: check_finished refuses that).
struct NewStages {
  std::vector<std::string> names;
  std::string before;  // a finished stage that comes after a new one ("" = none)
};
NewStages new_stages(const nlohmann::json& summary, const lawcat::config::RunConfig& now) {
  std::set<std::string> ran;
  for (const auto& st : summary.value("stages", nlohmann::json::array())) ran.insert(st.value("stage", ""));
  const std::pair<const char*, bool> order[] = {{"pretrain", now.pretrain.enabled},
                                                {"distill", now.attention.kind == "lawcat" && now.distill.enabled},
                                                {"lora", now.lora.enabled}};
  NewStages out;
  for (const auto& [name, enabled] : order) {
    if (ran.count(name) && !out.names.empty() && out.before.empty()) out.before = name;
    if (enabled && !ran.count(name)) out.names.push_back(name);
  }
  return out;
}

// A finished run is skipped, so the config asked for now must be the one it ran with, as
// `distill --resume` requires (train::run_recipe): a difference beyond the harmless keys is an
// error naming the run and the keys; fewer steps than a finished stage did is an error, more a
// warning (it does not train on). Else a changed --set was skipped silently and the table showed
// the old numbers as if they were the new config's.
void check_finished(const stdfs::path& dir, const nlohmann::json& summary, const lawcat::config::RunConfig& now) {
  using namespace lawcat;
  // The run was found in `dir`: its output_dir (and a cache dir naming the same folder) spelled
  // another way (relative, "./") is the same run, not a changed config.
  config::RunConfig same = now;
  const config::RunConfig saved = config::load_run_config(dir / "config.yaml");
  std::error_code ec;
  same.output_dir = saved.output_dir;
  if (stdfs::weakly_canonical(saved.data.cache_dir, ec) == stdfs::weakly_canonical(now.data.cache_dir, ec))
    same.data.cache_dir = saved.data.cache_dir;
  std::string msg =
      train::resume_config_conflicts(dir, saved, same, "Use another output_dir (--output-dir) for a new sweep.");
  if (const NewStages added = new_stages(summary, now); !added.before.empty())
    msg += (msg.empty() ? "" : "\n") + added.names.front() + " is now enabled, but this run finished " + added.before +
           " without it (its weights would be reused): use another output_dir (--output-dir) for a new sweep";
  for (const auto& st : summary.value("stages", nlohmann::json::array())) {
    const std::string stage = st.value("stage", "");
    const config::StageConfig* sc = stage == "pretrain" ? &now.pretrain
                                    : stage == "distill" ? &now.distill
                                    : stage == "lora"    ? &now.lora
                                                         : nullptr;
    const int64_t did = st.value("steps", int64_t(0));
    if (!sc || !sc->enabled || sc->steps == did) continue;
    if (const std::string fewer = train::fewer_steps_error(stage, sc->steps, did, (dir / stage / "done.json").string());
        !fewer.empty())
      msg += (msg.empty() ? "" : "\n") + fewer;
    else
      log::warn(dir.string(), ": ", train::finished_steps_ignored(stage, did, sc->steps));
  }
  if (!msg.empty()) throw ConfigError(msg);
}

// Loads and checks each run's config as the real sweep would, a finished run's also against the
// config it ran with (check_finished); throws one ConfigError listing every problem. --dry-run
// (`list`) checks and lists every run; a real sweep checks its finished runs before anything trains,
// so that a rerun with a changed config stops before training the runs that had not run.
int check_runs(const SweepJob& job, const std::vector<Run>& runs, bool list) {
  using namespace lawcat;
  std::vector<std::string> problems;
  std::string base_cache_dir;
  try {
    base_cache_dir = config::load_run_config(job.s.base, job.extra).data.cache_dir;
  } catch (const std::exception& e) {
    problems.push_back("base " + job.s.base + ": " + describe_exception(e));
  }
  for (const auto& r : runs) {
    const std::optional<nlohmann::json> done = finished_summary(job.root / r.name);
    if (!list && !done) continue;
    try {
      const config::RunConfig cfg = config::load_run_config(job.s.base, job.overrides_of(r, base_cache_dir));
      if (done) check_finished(job.root / r.name, *done, cfg);
      if (list) std::cout << "  " << r.name << ": ok\n";
    } catch (const std::exception& e) {
      if (list) std::cout << "  " << r.name << ": INVALID\n";
      std::string what = describe_exception(e);  // a message of several lines indented under its run
      for (size_t at = what.find('\n'); at != std::string::npos; at = what.find('\n', at + 1)) what.insert(at + 1, "    ");
      problems.push_back("run " + r.name + ": " + what);
    }
  }
  if (!problems.empty()) {
    std::string msg = std::to_string(problems.size()) + " problem(s) in sweep " + job.file + ":";
    for (const auto& p : problems) msg += "\n  " + p;
    throw ConfigError(msg);
  }
  return 0;
}

// Runs run i of `runs` (1-based position in the progress line) unless it finished earlier
// (checked by check_runs); fills its summary and status. Returns false when Ctrl-C interrupted it.
bool run_one(const SweepJob& job, Run& r, size_t i, size_t n_runs, const std::string& base_cache_dir,
             int& failed) {
  using namespace lawcat;
  const stdfs::path dir = job.root / r.name;
  const std::vector<std::string> ov = job.overrides_of(r, base_cache_dir);
  if (auto done = finished_summary(dir); done && new_stages(*done, config::load_run_config(job.s.base, ov)).names.empty()) {
    r.summary = *done;
    r.status = "done earlier";
    std::cout << "[" << i + 1 << "/" << n_runs << "] " << r.name << ": finished earlier, skipped\n";
    return true;
  }
  std::cout << "[" << i + 1 << "/" << n_runs << "] " << r.name << "\n" << std::flush;
  try {
    config::RunConfig cfg = config::load_run_config(job.s.base, ov);
    train::RecipeOptions opt;
    opt.resume = stdfs::exists(dir / "config.yaml");
    opt.config_source = job.s.base;
    train::RecipeResult res = train::run_recipe(cfg, opt);
    if (res.interrupted) {
      std::cout << "sweep interrupted during " << r.name << "; run it again to continue\n";
      return false;
    }
    r.summary = nlohmann::json::parse(fs::read_text(dir / "summary.json"));
    r.status = "done";
  } catch (const std::exception& e) {
    r.status = "failed: " + describe_exception(e);
    ++failed;
    log::error("sweep run ", r.name, " failed: ", describe_exception(e));
  }
  return true;
}

// results.csv and results.md (also printed): a row per run, the grid values and the metrics.
void write_table(const SweepJob& job, const std::vector<Run>& runs) {
  using namespace lawcat;
  const Sweep& s = job.s;
  const std::vector<std::pair<std::string, std::string>> cols = {
      {"distill.init_val", "distill MSE init"}, {"distill.best_val", "distill MSE best"},
      {"distill.reduction", "MSE reduction"},   {"lora.best_val", "lora CE best"},
      {"lora.ppl", "lora ppl"},                 {"distill.tokens_per_s", "distill tok/s"},
      {"distill.wall_s", "distill s"},          {"lora.wall_s", "lora s"}};
  std::ostringstream csv, md;
  csv << "run";
  md << "| run";
  if (!s.variants.empty()) csv << ",variant", md << " | variant";
  for (const auto& [k, v] : s.grid) csv << "," << k, md << " | " << k;
  for (const auto& [k, label] : cols) csv << "," << k, md << " | " << label;
  csv << ",status\n";
  md << " | status |\n|---";
  for (size_t k = 0; k < s.grid.size() + cols.size() + 1 + (s.variants.empty() ? 0 : 1); ++k) md << "|---";
  md << "|\n";
  for (const auto& r : runs) {
    csv << r.name;
    md << "| " << r.name;
    if (!s.variants.empty()) csv << "," << r.variant, md << " | " << r.variant;
    for (const auto& v : r.values) csv << "," << v, md << " | " << v;
    for (const auto& [k, label] : cols) {
      const std::string x = num(metric_value(r.summary, k));
      csv << "," << x;
      md << " | " << x;
    }
    std::string st = r.status;
    std::replace(st.begin(), st.end(), '\n', ' ');
    std::replace(st.begin(), st.end(), ',', ';');
    csv << "," << st << "\n";
    md << " | " << st.substr(0, 80) << " |\n";
  }
  const stdfs::path& root = job.root;
  fs::atomic_write_text(root / "results.csv", csv.str());
  fs::atomic_write_text(root / "results.md", "# sweep " + job.file + "\n\nmetric: " + s.metric + "\n\n" + md.str());
  std::cout << "\n" << md.str() << "\nresults: " << (root / "results.csv").string() << ", "
            << (root / "results.md").string() << "\n";
}

// Grid values in order: numbers by value (8 before 16), before any text, which goes by text.
bool value_less(const std::string& a, const std::string& b) {
  auto number = [](const std::string& t, double& v) {
    char* end = nullptr;
    v = std::strtod(t.c_str(), &end);
    return end != t.c_str() && *end == '\0';
  };
  double x = 0, y = 0;
  const bool na = number(a, x), nb = number(b, y);
  if (na != nb) return na;
  return na ? x < y : a < b;
}

// results.png: the metric against the last grid key, one line per variant and combination of
// the other keys, in the file's variant order and value_less order (results.dat and results.gp
// are written without gnuplot too; plot::run warns). Nothing for a sweep of variants only.
void write_plot(const SweepJob& job, const std::vector<Run>& runs) {
  using namespace lawcat;
  const Sweep& s = job.s;
  const stdfs::path& root = job.root;
  if (s.grid.empty()) return;  // variants only: the table is the result
  const std::string xkey = s.grid.back().first;
  auto variant_index = [&](const Run& r) {
    return std::find_if(s.variants.begin(), s.variants.end(), [&](const auto& v) { return v.first == r.variant; }) -
           s.variants.begin();
  };
  // Runs sorted by variant, then each grid value (the last one last: x ascending within a line).
  std::vector<const Run*> sorted;
  for (const auto& r : runs)
    if (std::isfinite(metric_value(r.summary, s.metric))) sorted.push_back(&r);
  std::stable_sort(sorted.begin(), sorted.end(), [&](const Run* a, const Run* b) {
    if (variant_index(*a) != variant_index(*b)) return variant_index(*a) < variant_index(*b);
    return std::lexicographical_compare(a->values.begin(), a->values.end(), b->values.begin(), b->values.end(),
                                        value_less);
  });
  std::vector<std::pair<std::string, std::string>> series;  // legend -> "x y" lines, in plot order
  for (const Run* r : sorted) {
    std::string legend = r->variant;
    for (size_t k = 0; k + 1 < s.grid.size(); ++k)
      legend += (legend.empty() ? "" : ", ") + leaf(s.grid[k].first) + "=" + r->values[k];
    if (legend.empty()) legend = s.metric;
    if (series.empty() || series.back().first != legend) series.emplace_back(legend, "");
    series.back().second += r->values.back() + " " + num(metric_value(r->summary, s.metric), 9) + "\n";
  }
  std::ostringstream dat, gp;
  int idx = 0;
  gp << "set terminal pngcairo size 900,540 enhanced font ',10'\nset output " << lawcat::plot::file(root / "results.png")
     << "\nset title 'sweep " << job.file << "' noenhanced\nset xlabel '" << xkey << "' noenhanced\nset ylabel '"
     << s.metric << "' noenhanced\nset grid\nset key outside right\nplot ";
  for (const auto& [legend, lines] : series) {
    dat << "# " << legend << "\n" << lines << "\n\n";
    gp << (idx ? ", " : "") << lawcat::plot::file(root / "results.dat") << " index " << idx
       << " using 1:2 with linespoints pt 7 lw 2 title '" << legend << "' noenhanced";
    ++idx;
  }
  gp << "\n";
  if (idx > 0) {
    fs::atomic_write_text(root / "results.dat", dat.str());
    fs::atomic_write_text(root / "results.gp", gp.str());
    if (lawcat::plot::run(root / "results.gp", root / "results.png")) std::cout << "plot: " << (root / "results.png").string() << "\n";
  }
}

// Plan the runs, check them (--dry-run) or run this shard's share, then the table and the plot.
int run_sweep(SweepJob job, const std::vector<std::string>& only, const std::string& shard, bool dry) {
  using namespace lawcat;
  const auto [shard_i, shard_n] = *parse_shard(shard);  // checked by CLI11
  std::vector<Run> runs = plan_runs(job.s, only, job.file);
  std::vector<Run> mine;  // this shard's runs
  for (size_t i = 0; i < runs.size(); ++i)
    if (static_cast<int64_t>(i) % shard_n == shard_i) mine.push_back(runs[i]);
  std::cout << "sweep " << job.file << ": " << runs.size() << " runs under " << job.root.string();
  if (shard_n > 1) std::cout << ", " << mine.size() << " in shard " << shard_i << "/" << shard_n;
  std::cout << "\n" << std::flush;  // before check_runs' warnings (stderr)
  if (dry) return check_runs(job, mine, true);
  stdfs::create_directories(job.root);
  // --shard processes share root by design; each run locks its own folder in run_recipe.
  std::optional<fs::DirLock> sweep_lock;
  if (shard_n == 1) sweep_lock.emplace(job.root);
  // Runs share one token cache: the base config's data.cache_dir, else <output_dir>/cache.
  const std::string base_cache_dir = config::load_run_config(job.s.base, job.extra).data.cache_dir;
  check_runs(job, mine, false);
  int failed = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (static_cast<int64_t>(i) % shard_n != shard_i) continue;
    if (!run_one(job, runs[i], i, runs.size(), base_cache_dir, failed)) return 130;
  }
  if (shard_n > 1) {  // the table is written by a last call without --shard
    std::cout << "shard " << shard_i << "/" << shard_n << " done" << (failed ? " (with failures)" : "") << "\n";
    return failed ? 1 : 0;
  }
  write_table(job, runs);
  write_plot(job, runs);
  return failed ? 1 : 0;
}

lawcat::cli::Runner setup_sweep(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto extra = std::make_shared<std::vector<std::string>>();
  auto dry = std::make_shared<bool>(false);
  auto shard = std::make_shared<std::string>();
  auto only = std::make_shared<std::vector<std::string>>();
  auto out_dir = std::make_shared<std::string>();
  app.add_option("file", *file, "sweep file (YAML): base, output_dir, set, grid, metric")->required();
  app.add_option("--set", *extra, "override for every run, e.g. --set distill.steps=50 (repeatable)");
  app.add_flag("--dry-run", *dry, "list the runs, load and check every run's config, and exit");
  app.add_option("--shard", *shard, "i/n: run only runs i, i+n, ... (0-based; n processes can share a GPU)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return parse_shard(text) ? std::string() : "expected i/n, whole numbers with 0 <= i < n, got '" + text + "'";
          },
          "i/n"));
  app.add_option("--only", *only, "variants to run, comma-separated (default: all)")->delimiter(',');
  app.add_option("--output-dir", *out_dir, "where the runs go (default: the sweep file's output_dir)");
  return [file, extra, dry, shard, only, out_dir] {
    lawcat::train::install_signal_handlers();
    SweepJob job{read_sweep(*file), *file, *extra, {}};
    if (!out_dir->empty()) job.s.output_dir = *out_dir;
    job.root = job.s.output_dir;
    for (auto& name : *only) name = lawcat::eval::trim(name);  // "--only 'a, b'": CLI11 splits at the comma only
    return run_sweep(std::move(job), *only, *shard, *dry);
  };
}
LAWCAT_COMMAND("sweep", "Run a grid of training runs over a base config; results table and plot", setup_sweep);
}  // namespace
