// load_tokenizer: picks the tokenizer file of a checkpoint directory and applies the
// BOS/EOS of tokenizer_config.json (or special_tokens_map.json) when present.
#include "text/tokenizer.h"

#include <nlohmann/json.hpp>

#include <optional>

#include "text/tokenizer_impl.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::text {
namespace {

using json = nlohmann::json;

// "bos_token": "<s>" | {"content": "<s>", ...} | null
std::optional<std::string> token_name(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// BOS/EOS names (and add_bos_token) from tokenizer_config.json, else special_tokens_map.json.
void apply_config(const std::filesystem::path& dir, detail::TokenizerBase& tok) {
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const auto path = dir / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) continue;
    json cfg;
    try {
      cfg = json::parse(fs::read_text(path));
    } catch (const json::exception& e) {
      throw DataError(path.string() + ": not valid JSON: " + e.what());
    }
    if (!cfg.is_object()) throw DataError(path.string() + ": expected a JSON object");
    auto resolve = [&](const char* key, auto set) {
      auto n = token_name(cfg, key);
      if (cfg.contains(key) && cfg[key].is_null()) {  // explicitly none (e.g. Qwen2's bos_token)
        set(-1);
        return;
      }
      if (!n) return;
      int64_t id = tok.piece_to_id(*n);
      if (id < 0) {
        log::warn(path.string(), ": ", key, " '", *n, "' is not in the tokenizer vocabulary; ignored");
        return;
      }
      set(id);
    };
    resolve("bos_token", [&](int64_t id) { tok.set_bos(id); });
    resolve("eos_token", [&](int64_t id) { tok.set_eos(id); });
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean())
      tok.set_add_bos_default(cfg["add_bos_token"].get<bool>());
    return;  // the first file found decides
  }
}

// tokenizer.json of the SentencePiece kind (no ByteLevel anywhere) while tokenizer.model
// is beside it: the .model is the original, prefer it.
bool prefer_model_over_json(const std::filesystem::path& json_file) {
  try {
    std::string text = fs::read_text(json_file);
    return text.find("\"ByteLevel\"") == std::string::npos;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::filesystem::path tokenizer_file(const std::filesystem::path& model_dir) {
  std::error_code ec;
  LAWCAT_CHECK(std::filesystem::is_directory(model_dir, ec), DataError,
               model_dir.string() << ": not a directory (looking for a tokenizer)");
  const auto json_file = model_dir / "tokenizer.json";
  const auto model_file = model_dir / "tokenizer.model";
  const auto bin_file = model_dir / "tokenizer.bin";
  const bool has_json = std::filesystem::is_regular_file(json_file, ec);
  const bool has_model = std::filesystem::is_regular_file(model_file, ec);
  const bool has_bin = std::filesystem::is_regular_file(bin_file, ec);
  if (has_json && !(has_model && prefer_model_over_json(json_file))) return json_file;
  if (has_model) return model_file;
  if (has_bin) return bin_file;
  throw DataError(model_dir.string() +
                  ": no tokenizer found; looked for tokenizer.json (Hugging Face BPE), "
                  "tokenizer.model (SentencePiece) and tokenizer.bin (llama2.c)");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir) {
  const std::filesystem::path file = tokenizer_file(model_dir);
  const std::string name = file.filename().string();
  std::unique_ptr<detail::TokenizerBase> tok;
  if (name == "tokenizer.json") tok = detail::make_bpe_json(file);
  else if (name == "tokenizer.model") tok = detail::make_sentencepiece(file);
  else tok = detail::make_llama2c(file);
  apply_config(model_dir, *tok);
  log::debug("tokenizer ", tok->kind(), " from ", model_dir.string(), ": vocab ", tok->vocab_size(),
             ", bos ", tok->bos_id(), ", eos ", tok->eos_id());
  return tok;
}

}  // namespace lawcat::text
