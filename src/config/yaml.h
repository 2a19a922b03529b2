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

// Reads `file`, applies `overrides` ("distill.lr=0.001", "attention.layers=[0,2]"),
// checks everything. Relative paths in the file stay as written.
RunConfig load_run_config(const std::filesystem::path& file,
                          const std::vector<std::string>& overrides = {});
// Same from YAML text (`where` names it in errors).
RunConfig parse_run_config(const std::string& yaml_text, const std::string& where,
                           const std::vector<std::string>& overrides = {});

// When the config lists `fallback` overrides and its teacher (model.path's
// config.json, model.llama2c or its tokenizer) is missing, parse_run_config /
// load_run_config apply the fallback and then `overrides` (which win).
// The missing path, or "" when the teacher is there (or none is named).
std::string missing_teacher(const RunConfig& config);

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
