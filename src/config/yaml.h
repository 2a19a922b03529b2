// YAML config files: read (with `a.b=v` overrides), validate, write back.
// Every problem (unknown key, wrong type, bad range, cross-field check) is
// collected with file:line:col and the key path, and all are reported together
// in one ConfigError.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/schema.h"

namespace lawcat::config {

// Whether the config's `fallback` list applies: kAuto (see below) or kForce
// (the user asked for it, e.g. `lawcat distill --fallback`).
enum class Fallback { kAuto, kForce };

// Reads `file`, applies `overrides` ("distill.lr=0.001", "attention.layers=[0,2]"),
// checks everything. Relative paths in the file stay as written.
RunConfig load_run_config(const std::filesystem::path& file,
                          const std::vector<std::string>& overrides = {}, Fallback fallback = Fallback::kAuto);
// Same from YAML text (`where` names it in errors).
RunConfig parse_run_config(const std::string& yaml_text, const std::string& where,
                           const std::vector<std::string>& overrides = {}, Fallback fallback = Fallback::kAuto);

// The config's `fallback` overrides apply (before `overrides`, which win) only
// when the whole shared data folder is absent: every missing teacher file
// (model.path's config.json, model.llama2c, model.llama2c_tokenizer) lies under
// a `.../shared/data` folder that does not exist, and none of those keys was
// set through `overrides` (announced with log::warn); or with Fallback::kForce.
// Any other missing teacher file is a ConfigError naming the key and the path
// ("model.llama2c: <path> does not exist"): a typo never trains another model.
// The first missing teacher path, or "" when the teacher is there (or none is named).
std::string missing_teacher(const RunConfig& config);
// Throws ConfigError "<key>: <path> does not exist" for the first teacher file
// named in the config that is missing (run_recipe calls it before anything runs).
void check_teacher_exists(const RunConfig& config);
// The `.../shared/data` folder above `path` that does not exist, or "" (none in
// the path, or it exists).
std::filesystem::path absent_shared_data(const std::filesystem::path& path);

// Cross-field checks; throws ConfigError listing all problems.
void validate(const RunConfig& config, const std::string& where);

// The resolved config as YAML text / JSON (saved with each checkpoint).
std::string to_yaml(const RunConfig& config);
nlohmann::json to_json(const RunConfig& config);
void save_run_config(const std::filesystem::path& file, const RunConfig& config);

// Leaf settings that differ between two configs, as "key.path: <a> -> <b>",
// sorted by key (used to refuse resuming a run with another config).
std::vector<std::string> config_differences(const RunConfig& a, const RunConfig& b);

// Attention settings alone (the "lawcat" section of an exported config.json).
nlohmann::json attention_to_json(const AttentionConfig& a);
AttentionConfig attention_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace lawcat::config
