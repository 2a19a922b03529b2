#include "train/resume_state.h"

#include <cmath>
#include <limits>

#include "util/error.h"

namespace lawcat::train {
namespace {

// A number or null (NaN), as num_or_null writes it.
double num_or_nan(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

// An integer field. nlohmann's get<int64_t>() on a float (a hand-edited 1e60) is a
// float-to-int conversion out of range, which is undefined behaviour (found by
// fuzz_state_json): integers must be stored as JSON integers.
int64_t int_of(const nlohmann::json& v, const std::string& key, const std::string& file) {
  LAWCAT_CHECK(v.is_number_integer(), CheckpointError,
               file << ": key '" << key << "': expected an integer, got " << (v.is_number() ? v.dump() : v.type_name()));
  return v.get<int64_t>();
}
int64_t int_or(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& file) {
  auto it = j.find(key);
  return it == j.end() ? fallback : int_of(*it, key, file);
}

}  // namespace

ResumeState read_resume_state(const nlohmann::json& s, const std::string& file) {
  LAWCAT_CHECK(s.is_object(), CheckpointError, file << ": expected a JSON object, got " << s.type_name());
  for (const char* key : {"step", "tokens", "scheduler", "loader", "adam_steps"})
    LAWCAT_CHECK(s.contains(key), CheckpointError,
                 file << ": missing key '" << key << "' (an incomplete or foreign checkpoint)");
  LAWCAT_CHECK(s["loader"].is_object(), CheckpointError, file << ": key 'loader': expected an object");
  for (const char* key : {"epoch", "index", "consumed"})
    LAWCAT_CHECK(s["loader"].contains(key), CheckpointError,
                 file << ": missing key 'loader." << key << "' (an incomplete or foreign checkpoint)");
  LAWCAT_CHECK(s["scheduler"].is_object(), CheckpointError, file << ": key 'scheduler': expected an object");
  ResumeState r;
  // Wrong types (a hand-edited or foreign state.json) name the file too.
  try {
    r.stage = s.value("stage", "");
    r.step = int_of(s.at("step"), "step", file);
    r.tokens = int_of(s.at("tokens"), "tokens", file);
    r.wall_s = s.value("wall_s", 0.0);
    r.scheduler = s.at("scheduler");
    // ReduceLROnPlateau::load_state's fields, so that it cannot fail later.
    (void)r.scheduler.at("lr").get<double>();
    if (!r.scheduler.at("best").is_null()) (void)r.scheduler.at("best").get<double>();
    (void)int_of(r.scheduler.at("num_bad"), "scheduler.num_bad", file);
    const auto& l = s.at("loader");
    r.loader_epoch = int_of(l.at("epoch"), "loader.epoch", file);
    r.loader_index = int_of(l.at("index"), "loader.index", file);
    r.loader_consumed = int_of(l.at("consumed"), "loader.consumed", file);
    const auto& adam = s.at("adam_steps");
    LAWCAT_CHECK(adam.is_object(), CheckpointError, file << ": key 'adam_steps': expected an object");
    for (const auto& [name, n] : adam.items()) r.adam_steps[name] = int_of(n, "adam_steps." + name, file);
    r.world = int_or(s, "world", 1, file);
    r.init_val = num_or_nan(s, "init_val");
    r.best_val = num_or_nan(s, "best_val");
    r.final_val = num_or_nan(s, "final_val");
    r.best_step = int_or(s, "best_step", -1, file);
    r.interval_loss = s.value("interval_loss", 0.0);
    r.interval_steps = int_or(s, "interval_steps", 0, file);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(file + ": " + e.what());
  }
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"step", r.step},
                               {"tokens", r.tokens},
                               {"loader.epoch", r.loader_epoch},
                               {"loader.index", r.loader_index},
                               {"loader.consumed", r.loader_consumed},
                               {"interval_steps", r.interval_steps}})
    LAWCAT_CHECK(v >= 0, CheckpointError, file << ": key '" << key << "' must be >= 0, got " << v);
  LAWCAT_CHECK(r.world >= 1, CheckpointError, file << ": key 'world' must be >= 1, got " << r.world);
  for (const auto& [name, n] : r.adam_steps)
    LAWCAT_CHECK(n >= 0, CheckpointError, file << ": adam_steps['" << name << "'] must be >= 0, got " << n);
  return r;
}

nlohmann::json TrainState::to_json() const {
  auto num_or_null = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return nlohmann::json{{"stage", stage},
                        {"step", step},
                        {"tokens", tokens},
                        {"wall_s", wall_s},
                        {"scheduler", scheduler},
                        {"loader", {{"epoch", loader_epoch}, {"index", loader_index}, {"consumed", loader_consumed}}},
                        {"init_val", num_or_null(init_val)},
                        {"best_val", num_or_null(best_val)},
                        {"best_step", best_step},
                        {"final_val", num_or_null(final_val)},
                        {"interval_loss", interval_loss},
                        {"interval_steps", interval_steps},
                        {"adam_steps", adam_steps},
                        {"world", world}};
}

TrainState TrainState::from_json(const nlohmann::json& s, const std::string& file) {
  return read_resume_state(s, file);
}

ResumeState parse_resume_state(const std::string& text, const std::string& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(file + ": not valid JSON: " + e.what());
  }
  return read_resume_state(j, file);
}

}  // namespace lawcat::train
