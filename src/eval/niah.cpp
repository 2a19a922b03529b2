#include "eval/niah.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/fs.h"

namespace lawcat::eval {

NiahVariant niah_variant(const std::string& name) {
  const std::string n = to_lower(name);
  if (n == "s-niah-1" || n == "niah_single_1") return {"s-niah-1", "noise", "numbers"};
  if (n == "s-niah-2" || n == "niah_single_2") return {"s-niah-2", "essay", "numbers"};
  if (n == "s-niah-3" || n == "niah_single_3") return {"s-niah-3", "essay", "uuids"};
  throw ConfigError("niah: unknown variant '" + name + "' (expected s-niah-1, s-niah-2 or s-niah-3)");
}

namespace {
std::vector<std::string> read_word_list(const std::filesystem::path& file) {
  require_data_file(file, "wonderwords word list");
  std::istringstream in(fs::read_text(file));
  std::vector<std::string> words;
  std::string line;
  while (std::getline(in, line)) {
    std::string w = trim(line);
    if (!w.empty()) words.push_back(std::move(w));
  }
  LAWCAT_CHECK(!words.empty(), DataError, file.string() << ": word list is empty (expected one word per line)");
  return words;
}

// Every occurrence of `from` in text replaced by `to` (left to right, no rescans).
std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (size_t p = text.find(from); p != std::string::npos; p = text.find(from, pos)) {
    out.append(text, pos, p - pos);
    out += to;
    pos = p + from.size();
  }
  out.append(text, pos, std::string::npos);
  return out;
}
}  // namespace

NiahData load_niah_data(const std::filesystem::path& ruler_dir, const NiahVariant& variant) {
  NiahData d;
  d.adjectives = read_word_list(ruler_dir / "wonderwords_adjectivelist.txt");
  d.nouns = read_word_list(ruler_dir / "wonderwords_nounlist.txt");
  if (variant.haystack == "essay") {
    const auto file = ruler_dir / "PaulGrahamEssays.json";
    require_data_file(file, "RULER essay haystack");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(fs::read_text(file));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(file.string() + ": not valid JSON (" + e.what() + ")");
    }
    LAWCAT_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), DataError,
                 file.string() << ": expected a JSON object {\"text\": \"...\"}");
    d.essay_words = split_whitespace(j["text"].get<std::string>());
    LAWCAT_CHECK(!d.essay_words.empty(), DataError, file.string() << ": the essay text is empty");
  }
  return d;
}

std::string fill_template(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
  for (const auto& [name, value] : values) text = replace_all(text, "{" + name + "}", value);
  return text;
}

std::string niah_context(const NiahVariant& variant, const NiahData& data, int64_t words, double depth,
                         const std::string& needle) {
  if (variant.haystack == "noise") {
    static const std::vector<std::string> block = split_whitespace(kNiahNoise);
    const int64_t bw = static_cast<int64_t>(block.size());
    std::vector<std::string> lines(static_cast<size_t>(words / bw), kNiahNoise);
    if (words % bw) {
      std::string partial;
      for (int64_t i = 0; i < words % bw; ++i) partial += (i ? " " : "") + block[i];
      lines.push_back(std::move(partial));
    }
    const auto at = static_cast<size_t>(std::floor(static_cast<double>(lines.size()) * depth));
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(std::min(at, lines.size())), needle);
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) out += '\n';
      out += lines[i];
    }
    return out;
  }
  // essay
  const auto& w = data.essay_words;
  std::string text;
  for (int64_t i = 0; i < words; ++i) {
    if (i) text += ' ';
    text += w[static_cast<size_t>(i) % w.size()];
  }
  const std::vector<std::string> sents = split_sentences(text);
  const auto at = std::min(sents.size(), static_cast<size_t>(std::floor(static_cast<double>(sents.size()) * depth)));
  std::string before, after;
  for (size_t i = 0; i < sents.size(); ++i) {
    std::string& dst = i < at ? before : after;
    if (!dst.empty()) dst += ' ';
    dst += sents[i];
  }
  return before + " " + needle + " " + after;
}

std::string random_uuid(Rng& rng) {
  uint64_t hi = rng.next(), lo = rng.next();
  hi = (hi & ~0xF000ULL) | 0x4000ULL;                      // version 4
  lo = (lo & ~(0xC0ULL << 56)) | (0x80ULL << 56);          // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

PromptSample make_niah_sample(const text::Tokenizer& tokenizer, const NiahData& data, const NiahVariant& variant,
                              int64_t target_tokens, double depth, uint64_t seed, int64_t* hint, bool singular) {
  LAWCAT_CHECK(depth >= 0 && depth <= 1, ConfigError, "niah: depth must be in [0, 100] %, got " << depth * 100);
  LAWCAT_CHECK(variant.haystack != "essay" || !data.essay_words.empty(), DataError,
               "niah: " << variant.name << " needs the essay haystack (PaulGrahamEssays.json)");
  Rng rng(seed);
  const std::string key = data.adjectives[static_cast<size_t>(rng.uniform_int(0, data.adjectives.size() - 1))] +
                          "-" + data.nouns[static_cast<size_t>(rng.uniform_int(0, data.nouns.size() - 1))];
  const std::string value =
      variant.value_type == "numbers" ? std::to_string(rng.uniform_int(1000000, 9999999)) : random_uuid(rng);
  const std::string needle =
      fill_template(kNiahNeedle, {{"type_needle_v", variant.value_type}, {"key", key}, {"value", value}});
  std::string tmpl = std::string(kNiahTemplate) + kNiahAnswerPrefix;
  std::string type_v = variant.value_type;
  if (singular) {  // RULER's rewrite for num_needle_q * num_needle_v == 1
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"Some", "A"}, {"are all", "is"}, {"are", "is"}, {"answers", "answer"}})
      tmpl = replace_all(tmpl, from, to);
    type_v.pop_back();
  }
  auto build = [&](int64_t words) {
    const std::string context = niah_context(variant, data, words, depth, needle);
    return fill_template(tmpl, {{"type_needle_v", type_v}, {"context", context}, {"query", key}});
  };
  auto tokens_for = [&](int64_t words) { return static_cast<int64_t>(encode_prompt(tokenizer, build(words)).size()); };
  const FitResult fit = fit_units(tokens_for, target_tokens, 4 * target_tokens + 256, hint ? *hint : 0);
  LAWCAT_CHECK(within_tolerance(fit.tokens, target_tokens), ConfigError,
               "niah " << variant.name << ": cannot fit a prompt of " << target_tokens << " tokens (closest: "
                       << fit.tokens << " tokens with " << fit.units << " haystack words); the template alone is "
                       << tokens_for(0) << " tokens");
  if (hint) *hint = fit.units;
  PromptSample s;
  s.prompt = build(fit.units);
  s.ids = encode_prompt(tokenizer, s.prompt);
  s.references = {value};
  s.target_tokens = target_tokens;
  s.measured_tokens = static_cast<int64_t>(s.ids.size());
  s.length_of = "prompt";
  s.needle_offset = static_cast<int64_t>(s.prompt.find(needle));
  s.meta = {{"key", key}, {"value", value}, {"haystack_words", fit.units}, {"fit_probes", fit.probes}};
  return s;
}

double niah_score(const std::string& output, const std::vector<std::string>& references) {
  if (references.empty()) return 0.0;
  const std::string out = to_lower(output);
  int64_t found = 0;
  for (const auto& r : references) found += out.find(to_lower(r)) != std::string::npos;
  return static_cast<double>(found) / static_cast<double>(references.size());
}

}  // namespace lawcat::eval
