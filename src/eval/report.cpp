#include "eval/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <set>
#include <sstream>
#include <tuple>

#include "util/error.h"
#include "util/format.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/plot.h"

namespace lawcat::eval {

// ---- ResultStore -------------------------------------------------------------------

ResultStore::ResultStore(std::filesystem::path file) : file_(std::move(file)) {
  if (file_.has_parent_path()) std::filesystem::create_directories(file_.parent_path());
  if (!std::filesystem::exists(file_)) return;
  const std::string text = fs::read_text(file_);
  needs_newline_ = !text.empty() && text.back() != '\n';
  std::istringstream in(text);
  std::string line, kept, unreadable;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      if (!j.is_object() || !j.contains("key") || !j["key"].is_string()) throw std::runtime_error("no key");
      std::string key = j["key"].get<std::string>();
      records_[key] = std::move(j);
      kept += line + "\n";
    } catch (const std::exception& e) {
      ++malformed_;
      unreadable += line + "\n";
      log::warn(file_.string(), ":", lineno, ": unreadable result line (", e.what(),
                "; an interrupted write?); its sample runs again");
    }
  }
  if (malformed_ > 0) {
    // Moved aside once (kept, not dropped), so that later runs do not warn about them again.
    const std::filesystem::path aside = file_.string() + ".unreadable";
    std::string old;
    if (std::filesystem::exists(aside)) old = fs::read_text(aside);
    fs::atomic_write_text(aside, old + unreadable);
    fs::atomic_write_text(file_, kept);
    needs_newline_ = false;
    log::warn(file_.string(), ": ", malformed_, " unreadable line(s) moved to ", aside.string());
  }
}

bool ResultStore::done(const std::string& key) const {
  auto it = records_.find(key);
  return it != records_.end() && !it->second.contains("error");
}

const nlohmann::json* ResultStore::find(const std::string& key) const {
  auto it = records_.find(key);
  return it == records_.end() ? nullptr : &it->second;
}

void ResultStore::append(const nlohmann::json& record) {
  LAWCAT_CHECK(record.is_object() && record.contains("key") && record["key"].is_string(), Error,
               "ResultStore: a record needs a string \"key\"");
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (needs_newline_) line = "\n" + line;
  std::FILE* f = std::fopen(file_.c_str(), "ab");
  LAWCAT_CHECK(f, Error, file_.string() << ": cannot open the results file for appending");
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  std::fclose(f);
  LAWCAT_CHECK(ok, Error, file_.string() << ": failed to append a result (disk full?)");
  needs_newline_ = false;
  records_[record["key"].get<std::string>()] = record;
}

// ---- aggregation -------------------------------------------------------------------

std::vector<Cell> aggregate(const std::vector<nlohmann::json>& records, const std::vector<std::string>& models) {
  auto model_rank = [&](const std::string& m) {
    auto it = std::find(models.begin(), models.end(), m);
    return static_cast<int64_t>(it - models.begin());
  };
  using Key = std::tuple<std::string, int64_t, int64_t, int64_t, std::string>;  // variant, length, depth, rank, model
  std::map<Key, Cell> cells;
  std::map<Key, double> strict_sum;
  std::map<Key, int64_t> strict_n;
  for (const auto& r : records) {
    const std::string variant = r.value("variant", "");
    const std::string model = r.value("model", "");
    const int64_t length = r.value("length", int64_t{0});
    const int64_t depth = r.value("depth", int64_t{-1});
    Key k{variant, length, depth, model_rank(model), model};
    Cell& c = cells[k];
    c.variant = variant;
    c.model = model;
    c.length = length;
    c.depth = depth;
    if (r.value("beyond_max_positions", false)) c.beyond_positions = true;
    if (r.contains("error") || !r.contains("score") || !r["score"].is_number()) {
      ++c.errors;
      continue;
    }
    // Running means.
    const double w = 1.0 / static_cast<double>(c.n + 1);
    c.score += (r["score"].get<double>() - c.score) * w;
    c.mean_tokens += (r.value("measured_tokens", 0.0) - c.mean_tokens) * w;
    if (r.contains("nll")) c.nll += (r["nll"].get<double>() - c.nll) * w;
    c.tokens += r.value("tokens", int64_t{0});
    ++c.n;
    if (r.contains("strict") && r["strict"].is_number()) {
      strict_sum[k] += r["strict"].get<double>();
      ++strict_n[k];
    }
  }
  std::vector<Cell> out;
  for (auto& [k, c] : cells) {
    if (strict_n[k] > 0) c.strict = strict_sum[k] / static_cast<double>(strict_n[k]);
    out.push_back(c);
  }
  return out;
}

namespace {
using format::fixed;
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}
std::string length_label(int64_t L) {
  if (L >= 1024 && L % 1024 == 0) return std::to_string(L / 1024) + "K";
  return std::to_string(L);
}
}  // namespace

std::string format_table(const std::string& task, const std::vector<Cell>& cells, const std::vector<std::string>& models) {
  const bool ppl = task == "ppl", longppl = task == "longppl", lower_better = ppl || longppl;
  std::ostringstream os;
  std::vector<std::string> variants;
  for (const auto& c : cells)
    if (std::find(variants.begin(), variants.end(), c.variant) == variants.end()) variants.push_back(c.variant);
  size_t width = 10;
  for (const auto& m : models) width = std::max(width, m.size() + 2);
  bool any_beyond = false, any_error = false;
  for (const auto& variant : variants) {
    std::vector<const Cell*> vc;
    for (const auto& c : cells)
      if (c.variant == variant) vc.push_back(&c);
    bool has_depth = false;
    int64_t max_n = 0;
    for (const auto* c : vc) {
      has_depth |= c->depth >= 0;
      max_n = std::max(max_n, c->n);
    }
    os << task << (variant.empty() ? "" : " " + variant) << ": "
       << (ppl ? "perplexity (lower is better)"
               : longppl ? "mean NLL in nats/token by position, bucket ending at (lower is better)" : "score (%)")
       << (ppl ? "" : longppl ? ", " + std::to_string(max_n) + " documents" : ", up to " + std::to_string(max_n) + " samples per cell") << "\n";
    os << std::setw(8) << (ppl ? "ctx" : longppl ? "position" : "length") << (has_depth ? std::string(" ") + std::string("depth") : "") << " |";
    for (const auto& m : models) os << std::setw(static_cast<int>(width)) << m;
    os << "\n";
    // Rows in order of (length, depth).
    std::vector<std::pair<int64_t, int64_t>> rows;
    for (const auto* c : vc)
      if (std::find(rows.begin(), rows.end(), std::make_pair(c->length, c->depth)) == rows.end())
        rows.emplace_back(c->length, c->depth);
    std::sort(rows.begin(), rows.end());
    auto cell_text = [&](const Cell* c) -> std::string {
      if (!c) return "-";
      std::string t;
      if (c->n == 0) {
        t = c->errors ? "error" : "-";
        any_error |= c->errors > 0;
      } else {
        t = lower_better ? fixed(c->score, 3) : fixed(100.0 * c->score, 1);
      }
      if (c->errors && c->n) {
        t += "!";
        any_error = true;
      }
      if (c->beyond_positions) {
        t += "*";
        any_beyond = true;
      }
      return t;
    };
    auto print_row = [&](int64_t length, const std::string& depth_text, const std::vector<std::string>& texts) {
      os << std::setw(8) << length_label(length);
      if (has_depth) os << std::setw(6) << depth_text;
      os << " |";
      for (const auto& t : texts) os << std::setw(static_cast<int>(width)) << t;
      os << "\n";
    };
    for (size_t r = 0; r < rows.size(); ++r) {
      std::vector<std::string> texts;
      for (const auto& m : models) {
        const Cell* found = nullptr;
        for (const auto* c : vc)
          if (c->model == m && c->length == rows[r].first && c->depth == rows[r].second) found = c;
        texts.push_back(cell_text(found));
      }
      print_row(rows[r].first, rows[r].second >= 0 ? std::to_string(rows[r].second) : "", texts);
      // After the last depth of a length: the mean over depths.
      const bool last_of_length = r + 1 == rows.size() || rows[r + 1].first != rows[r].first;
      if (has_depth && last_of_length && !lower_better) {
        std::vector<std::string> means;
        for (const auto& m : models) {
          double sum = 0;
          int64_t n = 0;
          for (const auto* c : vc)
            if (c->model == m && c->length == rows[r].first && c->n > 0) {
              sum += c->score * static_cast<double>(c->n);
              n += c->n;
            }
          means.push_back(n ? fixed(100.0 * sum / static_cast<double>(n), 1) : "-");
        }
        print_row(rows[r].first, "mean", means);
      }
    }
    os << "\n";
  }
  if (any_beyond)
    os << "* " << (longppl ? "the bucket's positions go past" : "the prompt exceeds")
       << " max_position_embeddings of a model with softmax attention layers (evaluated anyway)\n";
  if (any_error) os << "! some samples failed (see \"error\" in results.jsonl); they are rerun on the next call\n";
  return os.str();
}

void write_cells_csv(const std::filesystem::path& file, const std::string& task, const std::vector<Cell>& cells) {
  std::ostringstream os;
  os << "task,variant,model,length,depth,samples,errors,score,strict,mean_tokens,beyond_max_positions,nll,tokens\n";
  for (const auto& c : cells) {
    os << csv_field(task) << "," << csv_field(c.variant) << "," << csv_field(c.model) << "," << c.length << ","
       << (c.depth >= 0 ? std::to_string(c.depth) : "") << "," << c.n << "," << c.errors << ","
       << (c.n ? fixed(c.score, 6) : "") << "," << (c.strict >= 0 ? fixed(c.strict, 6) : "") << ","
       << fixed(c.mean_tokens, 1) << "," << (c.beyond_positions ? "true" : "false") << ","
       << ((task == "ppl" || task == "longppl") && c.n ? fixed(c.nll, 6) : "") << ","
       << (task == "ppl" || task == "longppl" ? std::to_string(c.tokens) : "")
       << "\n";
  }
  fs::atomic_write_text(file, os.str());
}

nlohmann::json cells_to_json(const std::vector<Cell>& cells) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& c : cells) {
    nlohmann::json j = {{"variant", c.variant},
                        {"model", c.model},
                        {"length", c.length},
                        {"samples", c.n},
                        {"errors", c.errors},
                        {"score", c.n ? nlohmann::json(c.score) : nlohmann::json()},
                        {"mean_tokens", c.mean_tokens},
                        {"beyond_max_positions", c.beyond_positions}};
    if (c.depth >= 0) j["depth"] = c.depth;
    if (c.strict >= 0) j["strict"] = c.strict;
    if (c.tokens > 0) {
      j["nll"] = c.nll;
      j["tokens"] = c.tokens;
    }
    a.push_back(std::move(j));
  }
  return a;
}

// ---- plots -------------------------------------------------------------------------

namespace {
// The distinct values of one field over the cells, ascending (the plots' axes).
std::vector<int64_t> sorted_distinct(const std::vector<Cell>& cells, int64_t Cell::*field) {
  std::vector<int64_t> v;
  for (const auto& c : cells) v.push_back(c.*field);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}
}  // namespace

bool plot_heatmaps(const std::filesystem::path& png, const std::string& title, const std::vector<Cell>& cells,
                   const std::vector<std::string>& models) {
  const std::vector<int64_t> lengths = sorted_distinct(cells, &Cell::length);
  const std::vector<int64_t> depths = sorted_distinct(cells, &Cell::depth);
  if (lengths.empty()) return false;
  std::filesystem::path dat = png, gp = png;
  dat.replace_extension(".dat");
  gp.replace_extension(".gp");
  std::ostringstream d;
  for (size_t mi = 0; mi < models.size(); ++mi) {
    if (mi) d << "\n\n";
    d << "# " << models[mi] << ": length_index depth_index accuracy_percent\n";
    for (size_t yi = 0; yi < depths.size(); ++yi) {
      for (size_t xi = 0; xi < lengths.size(); ++xi) {
        const Cell* found = nullptr;
        for (const auto& c : cells)
          if (c.model == models[mi] && c.length == lengths[xi] && c.depth == depths[yi]) found = &c;
        d << xi << " " << yi << " " << (found && found->n ? fixed(100.0 * found->score, 2) : "NaN") << "\n";
      }
    }
  }
  fs::atomic_write_text(dat, d.str());
  std::ostringstream g;
  const int panel_w = std::max<int>(360, 70 * static_cast<int>(lengths.size()) + 160);
  const int h = std::max<int>(360, 40 * static_cast<int>(depths.size()) + 160);
  const int cols = std::min<int>(static_cast<int>(models.size()), 5);  // panels wrap after 5 models
  const int rows = (static_cast<int>(models.size()) + cols - 1) / cols;
  g << "set terminal pngcairo size " << panel_w * cols << "," << h * rows
    << " font 'sans,10'\nset output " << plot::file(png) << "\n";
  g << "set palette defined (0 '#b2182b', 50 '#fee08b', 100 '#1a9850')\nset cbrange [0:100]\n";
  g << "set cblabel 'accuracy (%)'\nset xlabel 'context length (tokens)'\nset ylabel 'depth (%)'\n";
  g << "set xrange [-0.5:" << lengths.size() - 0.5 << "]\nset yrange [-0.5:" << depths.size() - 0.5 << "]\n";
  g << "set xtics (";
  for (size_t i = 0; i < lengths.size(); ++i) g << (i ? ", " : "") << plot::quote(length_label(lengths[i])) << " " << i;
  g << ")\nset ytics (";
  for (size_t i = 0; i < depths.size(); ++i) g << (i ? ", " : "") << plot::quote(std::to_string(depths[i])) << " " << i;
  g << ")\nset datafile missing 'NaN'\n";
  g << "set multiplot layout " << rows << "," << cols << " title " << plot::quote(title) << "\n";
  for (size_t mi = 0; mi < models.size(); ++mi) {
    g << "set title " << plot::quote(models[mi]) << "\n";
    g << "plot " << plot::file(dat) << " index " << mi << " using 1:2:3 with image notitle, '' index " << mi
      << " using 1:2:(sprintf('%.0f', $3)) with labels notitle\n";
  }
  g << "unset multiplot\n";
  fs::atomic_write_text(gp, g.str());
  return plot::run(gp, png);
}

bool plot_lines(const std::filesystem::path& png, const std::string& title, const std::string& ylabel,
                const std::vector<Cell>& cells, const std::vector<std::string>& models, bool percent) {
  const std::vector<int64_t> lengths = sorted_distinct(cells, &Cell::length);
  if (lengths.empty()) return false;
  std::filesystem::path dat = png, gp = png;
  dat.replace_extension(".dat");
  gp.replace_extension(".gp");
  std::ostringstream d;
  for (size_t mi = 0; mi < models.size(); ++mi) {
    if (mi) d << "\n\n";
    d << "# " << models[mi] << ": length_index value\n";
    for (size_t xi = 0; xi < lengths.size(); ++xi) {
      // Mean over depths (if any) weighted by samples.
      double sum = 0;
      int64_t n = 0;
      for (const auto& c : cells)
        if (c.model == models[mi] && c.length == lengths[xi] && c.n > 0) {
          sum += c.score * static_cast<double>(c.n);
          n += c.n;
        }
      d << xi << " " << (n ? fixed((percent ? 100.0 : 1.0) * sum / static_cast<double>(n), 4) : "NaN") << "\n";
    }
  }
  fs::atomic_write_text(dat, d.str());
  std::ostringstream g;
  g << "set terminal pngcairo size 720,480 font 'sans,10'\nset output " << plot::file(png) << "\n";
  g << "set title " << plot::quote(title) << "\nset xlabel 'context length (tokens)'\nset ylabel "
    << plot::quote(ylabel) << "\nset key top left\nset grid\nset datafile missing 'NaN'\n";
  g << "set xrange [-0.3:" << lengths.size() - 0.7 << "]\nset xtics (";
  for (size_t i = 0; i < lengths.size(); ++i) g << (i ? ", " : "") << plot::quote(length_label(lengths[i])) << " " << i;
  g << ")\n";
  if (percent) g << "set yrange [0:100]\n";
  g << "plot ";
  for (size_t mi = 0; mi < models.size(); ++mi)
    g << (mi ? ", " : "") << plot::file(dat) << " index " << mi << " using 1:2 with linespoints lw 2 title "
      << plot::quote(models[mi]);
  g << "\n";
  fs::atomic_write_text(gp, g.str());
  return plot::run(gp, png);
}

}  // namespace lawcat::eval
