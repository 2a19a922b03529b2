#include "config/yaml.h"

#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>
#include <sstream>
#include <type_traits>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::config {
namespace {

// Sections are the structs with a visit() template; listed explicitly.
template <class T> constexpr bool section_v =
    std::is_same_v<T, AttentionConfig> || std::is_same_v<T, ModelConfig> ||
    std::is_same_v<T, ScratchModelConfig> ||
    std::is_same_v<T, DataConfig> || std::is_same_v<T, SchedulerConfig> ||
    std::is_same_v<T, StageConfig> || std::is_same_v<T, RunConfig>;
template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};

template <class T> std::string type_name() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean (true/false)";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (is_vector<T>::value) return "a list of " + type_name<typename T::value_type>();
  else return "a value";
}

std::string where_of(const std::string& file, const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.is_null()) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// Visitor that fills a section from a YAML map and records every problem.
class Reader {
 public:
  Reader(YAML::Node node, std::string prefix, const std::string& file, std::vector<std::string>& errors,
         const std::map<std::string, std::string>* overridden = nullptr)
      : node_(std::move(node)), prefix_(std::move(prefix)), file_(file), errors_(errors), overridden_(overridden) {}

  template <class T, class Check = std::nullptr_t>
  void operator()(const char* key, T& field, Check check = nullptr) {
    seen_.insert(key);
    if (!node_.IsMap()) return;
    YAML::Node child = node_[key];
    if (!child.IsDefined() || child.IsNull()) return;
    std::string path = prefix_ + key;
    if constexpr (section_v<T>) {
      if (!child.IsMap()) {
        errors_.push_back(where(path, child) + ": key '" + path + "': expected a mapping (section)");
        return;
      }
      Reader sub(child, path + ".", file_, errors_, overridden_);
      field.visit(sub);
      sub.finish();
    } else {
      T value{};
      if (!convert(child, value)) {
        std::ostringstream got;
        got << (child.IsScalar() ? "'" + child.Scalar() + "'" : child.IsSequence() ? "a list" : "a mapping");
        errors_.push_back(where(path, child) + ": key '" + path + "': expected " + type_name<T>() +
                          ", got " + got.str());
        return;
      }
      if constexpr (!std::is_same_v<Check, std::nullptr_t>) {
        std::string problem = run_check(check, value);
        if (!problem.empty()) {
          errors_.push_back(where(path, child) + ": key '" + path + "': " + problem + describe(value));
          return;
        }
      }
      field = std::move(value);
    }
  }

  // Unknown keys in this section.
  void finish() {
    if (!node_.IsMap()) return;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (!it->first.IsScalar()) {  // e.g. "{a: 1, {b: 2}}": a mapping or a list used as a key
        const std::string section = prefix_.empty() ? "(top level)" : prefix_.substr(0, prefix_.size() - 1);
        const char* got = it->first.IsMap() ? "a mapping" : it->first.IsSequence() ? "a list" : "nothing";
        errors_.push_back(where_of(file_, it->first) + ": in section '" + section +
                          "': a key must be a plain name, got " + got);
        continue;
      }
      std::string k = it->first.Scalar();
      if (!seen_.count(k)) {
        std::string known;
        for (auto& s : seen_) known += (known.empty() ? "" : ", ") + s;
        errors_.push_back(where(prefix_ + k, it->first) + ": unknown key '" + prefix_ + k + "' (known: " + known + ")");
      }
    }
  }

 private:
  template <class T>
  static bool convert(const YAML::Node& n, T& out) {
    try {
      if constexpr (is_vector<T>::value) {
        if (n.IsScalar()) {  // a single value where a list is expected: accept as one element
          out = {n.as<typename T::value_type>()};
          return true;
        }
        if (!n.IsSequence()) return false;
        out.clear();
        for (const auto& e : n) out.push_back(e.as<typename T::value_type>());
        return true;
      } else {
        if (!n.IsScalar()) return false;
        out = n.as<T>();
        return true;
      }
    } catch (const YAML::Exception&) {
      return false;
    }
  }
  template <class C, class T>
  static std::string run_check(C& check, const T& v) {
    if constexpr (std::is_invocable_r_v<std::string, C, const T&>) return check(v);
    else if constexpr (std::is_arithmetic_v<T>) return check(static_cast<double>(v));
    else return "";
  }
  template <class T>
  static std::string describe(const T& v) {
    std::ostringstream os;
    if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) os << " (got " << v << ")";
    return os.str();
  }

  // file:line:col, or "--set key=value" for a value that came from an override.
  std::string where(const std::string& path, const YAML::Node& n) const {
    if (overridden_) {
      auto it = overridden_->find(path);
      if (it != overridden_->end()) return "--set " + it->second;
    }
    return where_of(file_, n);
  }

  YAML::Node node_;
  std::string prefix_;
  const std::string& file_;
  std::vector<std::string>& errors_;
  const std::map<std::string, std::string>* overridden_;
  std::set<std::string> seen_;
};

// Visitor that writes a section into a YAML emitter.
class Writer {
 public:
  explicit Writer(YAML::Emitter& out) : out_(out) {}
  template <class T, class Check = std::nullptr_t>
  void operator()(const char* key, T& field, Check = nullptr) {
    out_ << YAML::Key << key << YAML::Value;
    if constexpr (section_v<T>) {
      out_ << YAML::BeginMap;
      field.visit(*this);
      out_ << YAML::EndMap;
    } else if constexpr (is_vector<T>::value) {
      out_ << YAML::Flow << YAML::BeginSeq;
      for (auto& e : field) out_ << e;
      out_ << YAML::EndSeq;
    } else if constexpr (std::is_floating_point_v<T>) {
      std::ostringstream os;
      os.precision(17);
      os << field;
      out_ << os.str();
    } else {
      out_ << field;
    }
  }
 private:
  YAML::Emitter& out_;
};

// Visitor that writes a section into JSON.
class JsonWriter {
 public:
  explicit JsonWriter(nlohmann::json& j) : j_(j) {}
  template <class T, class Check = std::nullptr_t>
  void operator()(const char* key, T& field, Check = nullptr) {
    if constexpr (section_v<T>) {
      nlohmann::json sub = nlohmann::json::object();
      JsonWriter w(sub);
      field.visit(w);
      j_[key] = sub;
    } else {
      j_[key] = field;
    }
  }
 private:
  nlohmann::json& j_;
};

// Applies "a.b.c=value" to the YAML tree (value parsed as YAML: numbers, lists, booleans).
void apply_override(YAML::Node& root, const std::string& spec, std::vector<std::string>& errors) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) {
    errors.push_back("--set " + spec + ": expected key.path=value");
    return;
  }
  std::string path = spec.substr(0, eq);
  YAML::Node value;
  const std::string text = spec.substr(eq + 1);
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    errors.push_back("--set " + spec + ": cannot parse value: " + e.msg);
    return;
  }
  // Text YAML reads as nothing (e.g. "%", a directive marker) is meant literally;
  // an empty value or null / ~ resets the key to its default.
  if ((!value.IsDefined() || value.IsNull()) && !text.empty() && text != "null" && text != "~" && text != "Null" &&
      text != "NULL")
    value = YAML::Node(text);
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  // yaml-cpp nodes are handles: walk with fresh handles, never reassign through a reference.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    if (!next.IsMap()) {
      errors.push_back("--set " + spec + ": '" + parts[i] + "' is not a section");
      return;
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

// yaml-cpp keeps every key of a mapping as written and lookups return the first, so a
// repeated key would silently lose the later value: report each one (file:line:col, key
// path, where it first appeared), in any mapping, nested ones and lists of them included.
void find_duplicate_keys(const YAML::Node& node, const std::string& prefix, const std::string& file,
                         std::vector<std::string>& errors) {
  if (node.IsSequence()) {
    for (const auto& e : node) find_duplicate_keys(e, prefix, file, errors);
    return;
  }
  if (!node.IsMap()) return;
  std::map<std::string, YAML::Mark> first;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string k = it->first.IsScalar() ? it->first.Scalar() : std::string();
    const std::string path = prefix + k;
    if (it->first.IsScalar()) {
      auto [at, fresh] = first.emplace(k, it->first.Mark());
      if (!fresh) {
        std::string prev = at->second.is_null() ? "" : " (first at line " + std::to_string(at->second.line + 1) + ")";
        errors.push_back(where_of(file, it->first) + ": duplicate key '" + path + "'" + prev);
      }
    }
    find_duplicate_keys(it->second, path + ".", file, errors);
  }
}

}  // namespace

namespace {
RunConfig parse_once(const std::string& yaml_text, const std::string& where, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(where + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  std::vector<std::string> errors;
  if (!root.IsMap()) {
    throw ConfigError(where + ": expected a mapping at the top level");
  }
  find_duplicate_keys(root, "", where, errors);
  std::map<std::string, std::string> overridden;
  for (const auto& o : overrides) {
    apply_override(root, o, errors);
    overridden[o.substr(0, o.find('='))] = o;
  }
  RunConfig cfg;
  Reader reader(root, "", where, errors, &overridden);
  cfg.visit(reader);
  reader.finish();
  if (!errors.empty()) {
    std::string msg = std::to_string(errors.size()) + " problem(s) in config " + where + ":";
    for (auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
  return cfg;
}
}  // namespace

namespace {
struct MissingFile {
  std::string key, path;
};
// Teacher files the config names that are not on this machine, in key order.
std::vector<MissingFile> missing_teacher_files(const RunConfig& c) {
  std::vector<MissingFile> out;
  std::error_code ec;
  if (!c.model.path.empty()) {
    const auto cfg = std::filesystem::path(c.model.path) / "config.json";
    if (!std::filesystem::exists(c.model.path, ec)) out.push_back({"model.path", c.model.path});
    else if (!std::filesystem::exists(cfg, ec)) out.push_back({"model.path", cfg.string()});
  }
  if (!c.model.llama2c.empty() && !std::filesystem::exists(c.model.llama2c, ec))
    out.push_back({"model.llama2c", c.model.llama2c});
  if (!c.model.llama2c.empty() && !c.model.llama2c_tokenizer.empty() &&
      !std::filesystem::exists(c.model.llama2c_tokenizer, ec))
    out.push_back({"model.llama2c_tokenizer", c.model.llama2c_tokenizer});
  return out;
}
std::string does_not_exist(const MissingFile& m) {
  return m.key + ": " + m.path + " does not exist";
}
}  // namespace

std::filesystem::path absent_shared_data(const std::filesystem::path& path) {
  std::filesystem::path prefix;
  std::string prev;
  for (const auto& part : path) {
    prefix /= part;
    const std::string name = part.string();
    if (prev == "shared" && name == "data") {
      std::error_code ec;
      return std::filesystem::exists(prefix, ec) ? std::filesystem::path() : prefix;
    }
    prev = name;
  }
  return {};
}

std::string missing_teacher(const RunConfig& c) {
  const auto m = missing_teacher_files(c);
  return m.empty() ? std::string() : m.front().path;
}

void check_teacher_exists(const RunConfig& c) {
  const auto m = missing_teacher_files(c);
  if (!m.empty()) throw ConfigError(does_not_exist(m.front()));
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& where,
                           const std::vector<std::string>& overrides, Fallback fallback) {
  RunConfig cfg = parse_once(yaml_text, where, overrides);
  LAWCAT_CHECK(fallback != Fallback::kForce || !cfg.fallback.empty(), ConfigError,
               where << ": the fallback was asked for, but the config lists no 'fallback' overrides");
  if (!cfg.fallback.empty()) {
    std::string list;
    for (const auto& f : cfg.fallback) list += (list.empty() ? "" : ", ") + f;
    bool apply = fallback == Fallback::kForce;
    if (apply) {
      log::warn("applying the config's fallback as asked: ", list);
    } else if (const auto missing = missing_teacher_files(cfg); !missing.empty()) {
      // Only a shared data folder that is absent as a whole (a user's machine) switches to
      // the fallback; a missing file anywhere else, or one the caller named, is a mistake.
      std::set<std::string> set_by_caller;
      for (const auto& o : overrides) set_by_caller.insert(o.substr(0, o.find('=')));
      std::filesystem::path absent;
      for (const auto& m : missing) {
        absent = absent_shared_data(m.path);
        if (set_by_caller.count(m.key)) {
          throw ConfigError(does_not_exist(m) + " (set by --set " + m.key + "=...)");
        }
        if (absent.empty()) {
          throw ConfigError(does_not_exist(m) + " (in " + where +
                            "; the config's fallback applies only when the whole shared data folder is absent)");
        }
      }
      apply = true;
      std::error_code ec;
      const std::string cwd = std::filesystem::current_path(ec).string();
      log::warn("TEACHER NOT FOUND: ", absent.string(), " does not exist (", missing.front().key, ": ",
                missing.front().path, absent.is_relative() ? "; relative paths in a config are taken from the current folder, " + cwd +
                                                                  ": run from the folder the config expects (the repository root for configs/)"
                                                            : std::string(),
                "); applying the config's FALLBACK instead: ", list);
    }
    if (apply) {
      // The config's fallback first, the caller's overrides last (they win).
      std::vector<std::string> all = cfg.fallback;
      all.insert(all.end(), overrides.begin(), overrides.end());
      cfg = parse_once(yaml_text, where + " (with its fallback)", all);
    }
  }
  validate(cfg, where);
  return cfg;
}

RunConfig load_run_config(const std::filesystem::path& file, const std::vector<std::string>& overrides,
                          Fallback fallback) {
  std::string text;
  try {
    text = fs::read_text(file);
  } catch (const Error& e) {
    throw ConfigError(std::string("cannot read config: ") + e.what());
  }
  return parse_run_config(text, file.string(), overrides, fallback);
}

void validate(const RunConfig& c, const std::string& where) {
  std::vector<std::string> errors;
  const auto& a = c.attention;
  if (a.kind == "lawcat" && a.conv_width > 16)
    errors.push_back("attention.conv_width: " + std::to_string(a.conv_width) +
                     " is above the supported maximum 16");
  if (a.window > 0 && a.window > 4096)
    errors.push_back("attention.window: at most 4096 (got " + std::to_string(a.window) + ")");
  for (auto l : a.layers)
    if (l < 0) errors.push_back("attention.layers: negative layer index " + std::to_string(l));
  if (const std::string e = gate_init_problem(a); !e.empty()) errors.push_back(e);
  if (c.data.seq_len < 2) errors.push_back("data.seq_len: must be >= 2");
  const std::pair<const char*, const StageConfig*> stages[] = {
      {"pretrain", &c.pretrain}, {"distill", &c.distill}, {"lora", &c.lora}};
  for (const auto& [name, s] : stages) {
    if (s->scheduler.min_lr > s->lr)
      errors.push_back(std::string(name) + ".scheduler.min_lr (" + std::to_string(s->scheduler.min_lr) +
                       ") is above " + name + ".lr (" + std::to_string(s->lr) + ")");
  }
  if (c.lora.enabled && c.lora.lora_dropout != 0.0)
    errors.push_back("lora.lora_dropout: only 0 is supported (the LoRA update is folded into the projection weights)");
  const bool any_stage = c.distill.enabled || c.lora.enabled || c.pretrain.enabled;
  const bool reads_data_train = (c.distill.enabled && c.distill.data.empty()) ||
                                (c.lora.enabled && c.lora.data.empty()) || (c.pretrain.enabled && c.pretrain.data.empty());
  if (reads_data_train && c.data.train.empty())
    errors.push_back("data.train: no training data given (list files or folders, or give every stage its own data)");
  if (any_stage && c.data.validation.empty() && c.data.val_fraction <= 0)
    errors.push_back("data.val_fraction: 0 with no data.validation leaves no validation set "
                     "(needed for the scheduler and the best checkpoint)");
  const auto& m = c.model;
  if (!m.path.empty() && !m.llama2c.empty())
    errors.push_back("model: set either model.path or model.llama2c, not both");
  if (!m.llama2c.empty() && m.llama2c_tokenizer.empty())
    errors.push_back("model.llama2c_tokenizer: required with model.llama2c (the tokenizer.bin that goes with it)");
  if (m.path.empty() && m.llama2c.empty() && !c.pretrain.enabled && (c.distill.enabled || c.lora.enabled))
    errors.push_back("model: no teacher: set model.path (HF directory) or model.llama2c, or enable pretrain "
                     "to train one from model.scratch");
  const auto& sc = m.scratch;
  if (sc.num_kv_heads > 0 && sc.num_heads % sc.num_kv_heads != 0)
    errors.push_back("model.scratch.num_heads (" + std::to_string(sc.num_heads) +
                     ") must be a multiple of num_kv_heads (" + std::to_string(sc.num_kv_heads) + ")");
  if (sc.num_heads > 0 && (sc.hidden_size % sc.num_heads != 0 || (sc.hidden_size / sc.num_heads) % 2 != 0))
    errors.push_back("model.scratch.hidden_size (" + std::to_string(sc.hidden_size) +
                     ") must be num_heads x an even head dim");
  if (!errors.empty()) {
    std::string msg = std::to_string(errors.size()) + " problem(s) in config " + where + ":";
    for (auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
}

std::string to_yaml(const RunConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  Writer w(out);
  const_cast<RunConfig&>(config).visit(w);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

nlohmann::json to_json(const RunConfig& config) {
  nlohmann::json j = nlohmann::json::object();
  JsonWriter w(j);
  const_cast<RunConfig&>(config).visit(w);
  return j;
}

void save_run_config(const std::filesystem::path& file, const RunConfig& config) {
  fs::atomic_write_text(file, to_yaml(config));
}

std::vector<std::string> config_differences(const RunConfig& a, const RunConfig& b) {
  const nlohmann::json fa = to_json(a).flatten(), fb = to_json(b).flatten();
  std::map<std::string, std::pair<std::string, std::string>> diff;
  for (auto it = fa.begin(); it != fa.end(); ++it) {
    auto jt = fb.find(it.key());
    if (jt == fb.end() || *jt != *it) diff[it.key()] = {it->dump(), jt == fb.end() ? "(absent)" : jt->dump()};
  }
  for (auto it = fb.begin(); it != fb.end(); ++it)
    if (!fa.contains(it.key())) diff[it.key()] = {"(absent)", it->dump()};
  // JSON pointers "/distill/lr" -> "distill.lr"; list elements "/data/train/0" -> "data.train".
  std::map<std::string, std::pair<std::string, std::string>> by_key;
  for (const auto& [ptr, v] : diff) {
    std::string key;
    std::stringstream ss(ptr);
    for (std::string part; std::getline(ss, part, '/');) {
      if (part.empty() || std::all_of(part.begin(), part.end(), ::isdigit)) continue;
      key += (key.empty() ? "" : ".") + part;
    }
    by_key.emplace(key, v);
  }
  std::vector<std::string> out;
  for (const auto& [key, v] : by_key) {
    // Lists: report the whole list.
    nlohmann::json ja = to_json(a), jb = to_json(b);
    std::string pa, pb;
    nlohmann::json::json_pointer p("/" + std::regex_replace(key, std::regex("\\."), "/"));
    pa = ja.contains(p) ? ja[p].dump() : "(absent)";
    pb = jb.contains(p) ? jb[p].dump() : "(absent)";
    out.push_back(key + ": " + pa + " -> " + pb);
  }
  return out;
}

nlohmann::json attention_to_json(const AttentionConfig& a) {
  nlohmann::json j = nlohmann::json::object();
  JsonWriter w(j);
  const_cast<AttentionConfig&>(a).visit(w);
  return j;
}

AttentionConfig attention_from_json(const nlohmann::json& j, const std::string& where) {
  // Round-trip through YAML (JSON is YAML) so the same reader checks keys and types.
  std::vector<std::string> errors;
  YAML::Node node = YAML::Load(j.dump());
  AttentionConfig a;
  Reader reader(node, "lawcat.", where, errors);
  a.visit(reader);
  reader.finish();
  if (!errors.empty()) {
    std::string msg = where + ": bad lawcat attention settings:";
    for (auto& e : errors) msg += "\n  " + e;
    throw ConfigError(msg);
  }
  return a;
}

}  // namespace lawcat::config
