// `lawcat sweep FILE`: a grid of runs over a base config (e.g. gate rank x conv
// width), each in its own directory, resumable (finished runs are skipped,
// interrupted ones resumed), then a results table (CSV + Markdown) and a plot.
//
// Sweep file (YAML):
//   base: configs/quickstart.yaml          the run config every run starts from
//   output_dir: runs/sweep                 runs go to <output_dir>/<key-value_...>
//   set: [lora.enabled=false]              overrides for every run (optional)
//   grid:                                  every combination, in this order
//     attention.gate_rank: [16, 32, 64]
//     attention.conv_width: [0, 2, 4, 8]
//   metric: distill.best_val               column the plot shows (stage.field of summary.json)
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "config/yaml.h"
#include "train/loop.h"
#include "train/recipe.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace {
namespace stdfs = std::filesystem;
using lawcat::ConfigError;

struct Sweep {
  std::string base, output_dir, metric = "distill.best_val";
  std::vector<std::string> set;
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;  // key -> values (YAML scalars)
};

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
      else if (key == "metric") s.metric = v.as<std::string>();
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
          if (g->second.IsSequence())
            for (const auto& e : g->second) values.push_back(YAML::Dump(e));
          else values.push_back(YAML::Dump(g->second));
          if (values.empty()) errors.push_back(at_of(file, g->second) + ": grid key '" + g->first.as<std::string>() + "' has no values");
          s.grid.emplace_back(g->first.as<std::string>(), values);
        }
      } else {
        errors.push_back(at_of(file, it->first) + ": unknown key '" + key + "' (known: base, output_dir, set, grid, metric)");
      }
    } catch (const YAML::Exception& e) {
      errors.push_back(at_of(file, v) + ": key '" + key + "': " + e.msg);
    }
  }
  if (s.base.empty()) errors.push_back(file + ": 'base' (the run config) is required");
  if (s.output_dir.empty()) errors.push_back(file + ": 'output_dir' is required");
  if (s.grid.empty()) errors.push_back(file + ": 'grid' is empty");
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

std::string num(double v, int prec = 4) {
  if (!std::isfinite(v)) return "";
  std::ostringstream os;
  os << std::setprecision(prec) << v;
  return os.str();
}

lawcat::cli::Runner setup_sweep(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto extra = std::make_shared<std::vector<std::string>>();
  auto dry = std::make_shared<bool>(false);
  app.add_option("file", *file, "sweep file (YAML): base, output_dir, set, grid, metric")->required();
  app.add_option("--set", *extra, "override for every run, e.g. --set distill.steps=50 (repeatable)");
  app.add_flag("--dry-run", *dry, "list the runs and exit");
  return [file, extra, dry] {
    using namespace lawcat;
    train::install_signal_handlers();
    Sweep s = read_sweep(*file);
    // Cartesian product, first key slowest.
    std::vector<Run> runs(1);
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
    const stdfs::path root = s.output_dir;
    std::cout << "sweep " << *file << ": " << runs.size() << " runs under " << root.string() << "\n";
    if (*dry) {
      for (const auto& r : runs) std::cout << "  " << r.name << "\n";
      return 0;
    }
    stdfs::create_directories(root);
    int failed = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      Run& r = runs[i];
      const stdfs::path dir = root / r.name;
      std::vector<std::string> ov = s.set;
      ov.insert(ov.end(), extra->begin(), extra->end());
      for (size_t k = 0; k < s.grid.size(); ++k) ov.push_back(s.grid[k].first + "=" + r.values[k]);
      ov.push_back("output_dir=" + dir.string());
      ov.push_back("data.cache_dir=" + (root / "cache").string());
      if (stdfs::exists(dir / "summary.json")) {
        auto j = nlohmann::json::parse(fs::read_text(dir / "summary.json"));
        if (!j.value("interrupted", true) && !j.value("export_dir", std::string()).empty()) {
          r.summary = j;
          r.status = "done earlier";
          std::cout << "[" << i + 1 << "/" << runs.size() << "] " << r.name << ": finished earlier, skipped\n";
          continue;
        }
      }
      std::cout << "[" << i + 1 << "/" << runs.size() << "] " << r.name << "\n" << std::flush;
      try {
        config::RunConfig cfg = config::load_run_config(s.base, ov);
        train::RecipeOptions opt;
        opt.resume = stdfs::exists(dir / "config.yaml");
        opt.config_source = s.base;
        train::RecipeResult res = train::run_recipe(cfg, opt);
        if (res.interrupted) {
          std::cout << "sweep interrupted during " << r.name << "; run it again to continue\n";
          return 130;
        }
        r.summary = nlohmann::json::parse(fs::read_text(dir / "summary.json"));
        r.status = "done";
      } catch (const std::exception& e) {
        r.status = "failed: " + describe_exception(e);
        ++failed;
        log::error("sweep run ", r.name, " failed: ", describe_exception(e));
      }
    }

    // ---- table -------------------------------------------------------------------------------
    const std::vector<std::pair<std::string, std::string>> cols = {
        {"distill.init_val", "distill MSE init"}, {"distill.best_val", "distill MSE best"},
        {"distill.reduction", "MSE reduction"},   {"lora.best_val", "lora CE best"},
        {"lora.ppl", "lora ppl"},                 {"distill.tokens_per_s", "distill tok/s"},
        {"distill.wall_s", "distill s"},          {"lora.wall_s", "lora s"}};
    std::ostringstream csv, md;
    csv << "run";
    md << "| run";
    for (const auto& [k, v] : s.grid) csv << "," << k, md << " | " << k;
    for (const auto& [k, label] : cols) csv << "," << k, md << " | " << label;
    csv << ",status\n";
    md << " | status |\n|---";
    for (size_t k = 0; k < s.grid.size() + cols.size() + 1; ++k) md << "|---";
    md << "|\n";
    for (const auto& r : runs) {
      csv << r.name;
      md << "| " << r.name;
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
    fs::atomic_write_text(root / "results.csv", csv.str());
    fs::atomic_write_text(root / "results.md", "# sweep " + *file + "\n\nmetric: " + s.metric + "\n\n" + md.str());
    std::cout << "\n" << md.str() << "\nresults: " << (root / "results.csv").string() << ", "
              << (root / "results.md").string() << "\n";

    // ---- plot: metric against the last grid key, one line per value of the others ------------
    if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
      const std::string xkey = s.grid.back().first;
      std::map<std::string, std::string> series;  // legend -> "x y" lines
      for (const auto& r : runs) {
        const double y = metric_value(r.summary, s.metric);
        if (!std::isfinite(y)) continue;
        std::string legend;
        for (size_t k = 0; k + 1 < s.grid.size(); ++k)
          legend += (legend.empty() ? "" : ", ") + leaf(s.grid[k].first) + "=" + r.values[k];
        if (legend.empty()) legend = s.metric;
        series[legend] += r.values.back() + " " + num(y, 9) + "\n";
      }
      std::ostringstream dat, gp;
      int idx = 0;
      gp << "set terminal pngcairo size 900,540 enhanced font ',10'\nset output '" << (root / "results.png").string()
         << "'\nset title 'sweep " << *file << "' noenhanced\nset xlabel '" << xkey << "' noenhanced\nset ylabel '"
         << s.metric << "' noenhanced\nset grid\nset key outside right\nplot ";
      for (const auto& [legend, lines] : series) {
        dat << "# " << legend << "\n" << lines << "\n\n";
        gp << (idx ? ", " : "") << "'" << (root / "results.dat").string() << "' index " << idx
           << " using 1:2 with linespoints pt 7 lw 2 title '" << legend << "' noenhanced";
        ++idx;
      }
      gp << "\n";
      if (idx > 0) {
        fs::atomic_write_text(root / "results.dat", dat.str());
        fs::atomic_write_text(root / "results.gp", gp.str());
        const std::string cmd = "gnuplot '" + (root / "results.gp").string() + "'";
        if (std::system(cmd.c_str()) == 0) std::cout << "plot: " << (root / "results.png").string() << "\n";
      }
    } else {
      log::warn("gnuplot not found: no sweep plot (install gnuplot-nox)");
    }
    return failed ? 1 : 0;
  };
}
LAWCAT_COMMAND("sweep", "Run a grid of training runs over a base config; results table and plot", setup_sweep);
}  // namespace
