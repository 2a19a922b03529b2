// Eval results: the resumable JSONL store, aggregation into cells, the
// side-by-side table, CSV / JSON writers and gnuplot plots.
//
// results.jsonl holds one JSON object per finished sample (or per ppl cell),
// each with a "key" naming everything that determines it (task, variant, model
// directory, length, depth, sample, seed, decoding settings). It is appended and
// fsync'ed record by record, so an interrupted run loses at most the sample in
// flight; a rerun skips every key already there. A torn last line (killed
// mid-write) is ignored with a warning and its sample is run again.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/plot.h"

namespace lawcat::eval {

class ResultStore {
 public:
  // Loads `file` when it exists (creating its folder otherwise).
  explicit ResultStore(std::filesystem::path file);
  // A finished record (one without "error") exists for `key`.
  bool done(const std::string& key) const;
  const nlohmann::json* find(const std::string& key) const;
  // Appends `record` (must have a string "key") as one line, flushed and fsync'ed.
  // A later record for the same key replaces the earlier one.
  void append(const nlohmann::json& record);
  size_t size() const { return records_.size(); }
  int64_t malformed_lines() const { return malformed_; }
  const std::filesystem::path& path() const { return file_; }

 private:
  std::filesystem::path file_;
  std::map<std::string, nlohmann::json> records_;
  bool needs_newline_ = false;
  int64_t malformed_ = 0;
};

// One table cell: a (variant, model, length, depth) group of records.
struct Cell {
  std::string variant;  // "" for passkey / ppl
  std::string model;
  int64_t length = 0;
  int64_t depth = -1;   // percent; -1 where the task has no depth (babilong, ppl)
  int64_t n = 0;        // scored samples
  int64_t errors = 0;   // samples that failed (e.g. out of memory)
  double score = 0;     // mean score in [0, 1] (ppl: perplexity)
  double strict = -1;   // mean strict score (babilong), -1 when not applicable
  double mean_tokens = 0;  // mean measured length (prompt or context tokens)
  bool beyond_positions = false;  // some sample exceeded a softmax model's max_position_embeddings
  double nll = 0;       // ppl: mean NLL (nats/token)
  int64_t tokens = 0;   // ppl: predicted tokens
};

// Groups records (each with variant, model, length, depth, score, ...) into cells,
// ordered by variant, length, depth, then the order of `models`.
std::vector<Cell> aggregate(const std::vector<nlohmann::json>& records, const std::vector<std::string>& models);

// The side-by-side table: one row per (variant, length, depth), one column per model.
std::string format_table(const std::string& task, const std::vector<Cell>& cells, const std::vector<std::string>& models);

// CSV (one line per cell) and JSON, written atomically.
void write_cells_csv(const std::filesystem::path& file, const std::string& task, const std::vector<Cell>& cells);
nlohmann::json cells_to_json(const std::vector<Cell>& cells);

// gnuplot is on PATH (util/plot.h).
using plot::have_gnuplot;
// Heatmaps (x: length, y: depth, colour: accuracy %), one panel per model, for
// the cells of one variant. Writes <png> plus <png stem>.dat / .gp beside it.
// Returns false (with a warning) when gnuplot is missing or fails.
bool plot_heatmaps(const std::filesystem::path& png, const std::string& title, const std::vector<Cell>& cells,
                   const std::vector<std::string>& models);
// One line per model: value against length (log2 x axis). `percent`: score × 100.
bool plot_lines(const std::filesystem::path& png, const std::string& title, const std::string& ylabel,
                const std::vector<Cell>& cells, const std::vector<std::string>& models, bool percent);

}  // namespace lawcat::eval
