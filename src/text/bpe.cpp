// Hugging Face tokenizer.json with a BPE model: byte-level (Llama 3, SmolLM / GPT-2,
// Qwen2) and the SentencePiece-style variant (Llama 2 / Mistral exports: Metaspace or
// Prepend+Replace normalizer, byte_fallback). Follows the `tokenizers` crate step by step:
//
//   text -> split on added tokens (leftmost-longest; lstrip/rstrip/single_word)
//        -> per other segment: normalizer -> pre-tokenizer (Split regex / ByteLevel /
//           Digits / Metaspace, possibly a Sequence) -> words
//        -> per word: BPE by merge rank (a heap over adjacent pairs, lowest rank then
//           leftmost, as tokenizers' Word::merge_all), cached per word
//   ids  -> tokens -> decoder chain (ByteLevel / ByteFallback / Replace / Fuse / Strip /
//           Metaspace) -> text (invalid UTF-8 replaced by U+FFFD as from_utf8_lossy).
//
// BOS/EOS: the post_processor template (TemplateProcessing) gives the BOS it adds; the
// interface's add_bos/add_eos then prepend/append those ids.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "text/regex.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::text {
namespace {

using json = nlohmann::json;
using Range = std::pair<size_t, size_t>;

const std::string kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---- splitting (tokenizers' NormalizedString::split) ------------------------------

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Matches -> the list of (range, is_match) covering all of s (tokenizers' find_matches).
std::vector<std::pair<Range, bool>> cover(size_t n, const std::vector<Range>& matches, bool invert) {
  std::vector<std::pair<Range, bool>> out;
  size_t prev = 0;
  for (const auto& m : matches) {
    if (prev != m.first) out.push_back({{prev, m.first}, invert});
    out.push_back({m, !invert});
    prev = m.second;
  }
  if (prev != n) out.push_back({{prev, n}, invert});
  return out;
}

std::vector<Range> apply_behavior(const std::vector<std::pair<Range, bool>>& parts, Behavior b) {
  std::vector<Range> out;
  bool previous_match = false;
  switch (b) {
    case Behavior::kIsolated:
      for (const auto& p : parts) out.push_back(p.first);
      break;
    case Behavior::kRemoved:
      for (const auto& p : parts)
        if (!p.second) out.push_back(p.first);
      break;
    case Behavior::kMergedWithPrevious:
      for (const auto& [r, is_match] : parts) {
        if (is_match && !previous_match && !out.empty()) out.back().second = r.second;
        else out.push_back(r);
        previous_match = is_match;
      }
      break;
    case Behavior::kMergedWithNext: {
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        const auto& [r, is_match] = *it;
        if (is_match && !previous_match && !out.empty()) out.back().first = r.first;
        else out.push_back(r);
        previous_match = is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case Behavior::kContiguous:
      for (const auto& [r, is_match] : parts) {
        if (is_match == previous_match && !out.empty()) out.back().second = r.second;
        else out.push_back(r);
        previous_match = is_match;
      }
      break;
  }
  std::vector<Range> nonempty;
  for (const auto& r : out)
    if (r.second > r.first) nonempty.push_back(r);
  return nonempty;
}

Behavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return Behavior::kRemoved;
  if (s == "Isolated") return Behavior::kIsolated;
  if (s == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::kMergedWithNext;
  if (s == "Contiguous") return Behavior::kContiguous;
  throw DataError(where + ": unknown split behavior '" + s + "'");
}

// All non-overlapping occurrences of a literal.
std::vector<Range> find_literal(std::string_view s, const std::string& lit) {
  std::vector<Range> out;
  if (lit.empty()) return out;
  for (size_t pos = s.find(lit); pos != std::string_view::npos; pos = s.find(lit, pos + lit.size()))
    out.emplace_back(pos, pos + lit.size());
  return out;
}

std::string replace_all(std::string_view s, const std::string& from, const std::string& to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t prev = 0;
  for (const auto& [b, e] : find_literal(s, from)) {
    out.append(s.data() + prev, b - prev);
    out += to;
    prev = e;
  }
  out.append(s.data() + prev, s.size() - prev);
  return out;
}

// A string pattern of tokenizer.json: {"String": "..."} or {"Regex": "..."}.
struct Pattern {
  std::string literal;
  std::shared_ptr<Regex> regex;
  std::vector<Range> find(std::string_view s) const {
    if (!regex) return find_literal(s, literal);
    std::vector<Range> out;
    regex->find_all(s, out);
    return out;
  }
};

// ---- pipeline steps -----------------------------------------------------------------

// One piece of text on its way through the pre-tokenizers. `at_origin`: starts at
// offset 0 of the input (Metaspace's prepend_scheme "first").
struct Piece {
  std::string text;
  bool at_origin;
};

struct Normalizer {
  enum Kind { kPrepend, kReplace, kNfc, kNoop } kind = kNoop;
  std::string prepend;
  Pattern pattern;
  std::string content;
};

struct PreTokenizer {
  enum Kind { kSplit, kByteLevel, kDigits, kMetaspace } kind = kSplit;
  Pattern pattern;                         // kSplit
  Behavior behavior = Behavior::kIsolated;  // kSplit
  bool invert = false;                      // kSplit
  bool add_prefix_space = false;            // kByteLevel
  bool use_regex = true;                    // kByteLevel
  std::shared_ptr<Regex> regex;             // kByteLevel (GPT-2 pattern) / kDigits (\p{N})
  bool individual_digits = false;           // kDigits
  std::string replacement;                  // kMetaspace
  std::string prepend_scheme = "always";    // kMetaspace: always, first, never
  bool split = true;                        // kMetaspace
};

struct Decoder {
  enum Kind { kByteLevel, kByteFallback, kReplace, kFuse, kStrip, kMetaspace } kind = kByteLevel;
  std::string pattern, content;  // kReplace (literal pattern) / kStrip (content)
  size_t start = 0, stop = 0;    // kStrip
  std::string replacement;       // kMetaspace
  bool prepend = true;           // kMetaspace: prepend_scheme != never
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word;
};

std::string type_of(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw DataError(where + ": expected an object with a string \"type\"");
  return j["type"].get<std::string>();
}

template <typename T>
T get_or(const json& j, const char* key, T dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return it->get<T>();
}

// A JSON integer in [0, limit): ids and offsets. nlohmann's get<int>() of a float such as 9e242
// is undefined behaviour (found by fuzz_tokenizer_json), so floats are refused here.
int64_t json_index(const json& j, const std::string& where, int64_t limit = int64_t{1} << 31) {
  LAWCAT_CHECK(j.is_number_integer() && (j.is_number_unsigned() || j.get<int64_t>() >= 0) &&
                   j.get<uint64_t>() < static_cast<uint64_t>(limit),
               DataError, where << ": expected an integer in 0.." << limit - 1 << ", got " << j.dump());
  return j.get<int64_t>();
}

// ---- the tokenizer ---------------------------------------------------------------------

class BpeTokenizer : public detail::TokenizerBase {
 public:
  explicit BpeTokenizer(const std::filesystem::path& file) : file_(file) {
    std::error_code ec;
    LAWCAT_CHECK(std::filesystem::is_regular_file(file, ec), DataError,
                 file.string() << ": tokenizer.json not found");
    LAWCAT_CHECK(Regex::available(), DataError,
                 file.string() << ": cannot read tokenizer.json: this build has no PCRE2 "
                                  "(libpcre2-8, needed for its regex pre-tokenizers); install "
                                  "libpcre2-dev and re-run cmake");
    json j;
    try {
      j = json::parse(fs::read_text(file));
    } catch (const json::exception& e) {
      throw DataError(file.string() + ": not valid JSON: " + e.what());
    }
    try {
      parse(j);
    } catch (const json::exception& e) {  // a field of an unexpected JSON type
      throw DataError(file.string() + ": unexpected content: " + e.what());
    }
  }

  std::vector<int64_t> encode(const std::string& text, bool add_bos, bool add_eos) const override {
    std::vector<int64_t> body;
    body.reserve(text.size() / 3 + 4);
    for (const auto& seg : split_added(text)) {
      if (seg.added >= 0) {
        body.push_back(seg.added);
        continue;
      }
      for (const auto& piece : pre_tokenize(normalize(text.substr(seg.begin, seg.end - seg.begin)),
                                            seg.begin == 0))
        bpe_word(piece.text, body);
    }
    return wrap(body, add_bos, add_eos);
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      check_id(ids[i], i);
      if (!is_special(ids[i])) tokens.push_back(token_text(ids[i]));
    }
    return unicode::to_valid_utf8(run_decoders(std::move(tokens), true, true));
  }

  std::string decode_piece(int64_t prev, int64_t id) const override {
    check_id(id, 0);
    if (is_special(id)) return {};
    return run_decoders({token_text(id)}, prev < 0 || prev == bos_, false);
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::string kind() const override { return "bpe"; }
  std::string id_to_piece(int64_t id) const override {
    return id >= 0 && id < vocab_size() ? id_to_token_[id] : std::string();
  }
  int64_t piece_to_id(const std::string& piece) const override {
    for (const auto& a : added_)
      if (a.content == piece) return a.id;
    auto it = vocab_.find(piece);
    return it == vocab_.end() ? -1 : it->second;
  }

 protected:
  bool is_control(int64_t id) const override { return special_ids_.count(id) > 0; }

 private:
  // ---- loading ----
  void parse(const json& j) {
    const std::string f = file_.string();
    LAWCAT_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), DataError,
                 f << ": no \"model\" object (is this a Hugging Face tokenizer.json?)");
    parse_model(j["model"], f + ": model");
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (const auto& a : j["added_tokens"]) {
        AddedToken t{static_cast<int32_t>(json_index(a.at("id"), f + ": added_tokens: id")),
                     a.at("content").get<std::string>(),
                     get_or(a, "special", false), get_or(a, "lstrip", false),
                     get_or(a, "rstrip", false), get_or(a, "single_word", false)};
        LAWCAT_CHECK(!t.content.empty(), DataError,
                     f << ": added_tokens: bad entry (id " << t.id << ", content '" << t.content << "')");
        added_.push_back(t);
        if (t.special) special_ids_.insert(t.id);
      }
    }
    // id -> token text: the model vocabulary, then added tokens (which may lie beyond it).
    int64_t n = 0;
    for (const auto& [tok, id] : vocab_) n = std::max<int64_t>(n, int64_t{id} + 1);
    for (const auto& a : added_) n = std::max<int64_t>(n, int64_t{a.id} + 1);
    // Ids are dense in every tokenizer.json transformers writes; a stray huge id would size
    // this table by it (an id of 2^31 - 1: 16 GiB, found by fuzz_tokenizer_json).
    const int64_t named = static_cast<int64_t>(vocab_.size() + added_.size());
    LAWCAT_CHECK(n <= named, DataError,
                 f << ": token ids run up to " << n - 1 << " but only " << named
                   << " tokens are named (model.vocab + added_tokens): the ids must be 0.." << named - 1);
    id_to_token_.assign(n, std::string());
    for (const auto& [tok, id] : vocab_) id_to_token_[id] = tok;
    for (const auto& a : added_) id_to_token_[a.id] = a.content;
    // Longest first: the splitter takes the longest added token starting at a position.
    added_by_length_ = added_;
    std::stable_sort(added_by_length_.begin(), added_by_length_.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
    for (const auto& a : added_) added_first_bytes_[static_cast<unsigned char>(a.content[0])] = true;

    if (j.contains("normalizer")) parse_normalizer(j["normalizer"], f + ": normalizer");
    if (j.contains("pre_tokenizer")) parse_pre_tokenizer(j["pre_tokenizer"], f + ": pre_tokenizer");
    if (j.contains("decoder")) parse_decoder(j["decoder"], f + ": decoder");
    add_bos_default_ = false;
    if (j.contains("post_processor")) parse_post_processor(j["post_processor"], f + ": post_processor");
    if (eos_ < 0) {  // no template EOS: the usual end-of-text special tokens
      for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<eos>"}) {
        int64_t id = piece_to_id(name);
        if (id >= 0 && special_ids_.count(id)) {
          eos_ = id;
          break;
        }
      }
    }
    log::debug("tokenizer.json ", f, ": ", vocab_.size(), " tokens, ", merges_.size(), " merges, ",
               added_.size(), " added, bos ", bos_, ", eos ", eos_);
  }

  void parse_model(const json& m, const std::string& where) {
    const std::string type = m.contains("type") ? m["type"].get<std::string>() : "BPE";
    LAWCAT_CHECK(type == "BPE", DataError,
                 where << ": model type '" << type << "' is not supported (only BPE)");
    LAWCAT_CHECK(m.contains("vocab") && m["vocab"].is_object(), DataError, where << ": no vocab object");
    vocab_.reserve(m["vocab"].size() * 2);
    for (const auto& [tok, id] : m["vocab"].items()) {
      vocab_.emplace(tok, static_cast<int32_t>(json_index(id, where + ".vocab: token '" + tok + "'")));
    }
    for (const auto& [tok, id] : vocab_) {
      size_t len = 0;
      if (!tok.empty() && unicode::decode_utf8(tok, 0, &len) && len == tok.size())
        char_ids_.emplace(tok, id);
    }
    const json empty = json::array();
    const json& merges = m.contains("merges") && !m["merges"].is_null() ? m["merges"] : empty;
    merges_.reserve(merges.size() * 2);
    int32_t rank = 0;
    for (const auto& mg : merges) {
      std::string a, b;
      if (mg.is_string()) {  // "a b"
        const std::string s = mg.get<std::string>();
        size_t sp = s.find(' ');
        LAWCAT_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, DataError,
                     where << ".merges[" << rank << "]: expected \"left right\", got \"" << s << "\"");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {  // ["a", "b"]
        LAWCAT_CHECK(mg.is_array() && mg.size() == 2, DataError,
                     where << ".merges[" << rank << "]: expected a string or a pair, got " << mg.dump());
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      }
      auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
      LAWCAT_CHECK(ia != vocab_.end() && ib != vocab_.end() && iab != vocab_.end(), DataError,
                   where << ".merges[" << rank << "]: \"" << a << "\" + \"" << b
                         << "\": a part or the merged token is not in the vocab");
      merges_.emplace(pair_key(ia->second, ib->second), MergeInfo{rank, iab->second});
      ++rank;
    }
    if (auto it = m.find("unk_token"); it != m.end() && it->is_string()) {
      auto u = vocab_.find(it->get<std::string>());
      LAWCAT_CHECK(u != vocab_.end(), DataError,
                   where << ".unk_token '" << it->get<std::string>() << "' is not in the vocab");
      unk_id_ = u->second;
    }
    byte_fallback_ = get_or(m, "byte_fallback", false);
    fuse_unk_ = get_or(m, "fuse_unk", false);
    ignore_merges_ = get_or(m, "ignore_merges", false);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      LAWCAT_CHECK(get_or(m, key, std::string()).empty(), DataError,
                   where << "." << key << " is set; not supported (byte-level / SentencePiece BPE never use it)");
    }
    if (get_or(m, "dropout", 0.0) > 0.0) log::warn(where, ".dropout is set; ignored (deterministic encoding)");
  }

  Pattern parse_pattern(const json& p, const std::string& where) {
    Pattern out;
    if (p.contains("Regex")) out.regex = std::make_shared<Regex>(p["Regex"].get<std::string>(), where);
    else if (p.contains("String")) out.literal = p["String"].get<std::string>();
    else throw DataError(where + ": expected {\"String\": ...} or {\"Regex\": ...}, got " + p.dump());
    return out;
  }

  void parse_normalizer(const json& n, const std::string& where) {
    if (n.is_null()) return;
    const std::string type = type_of(n, where);
    if (type == "Sequence") {
      const auto& list = n.at("normalizers");
      for (size_t i = 0; i < list.size(); ++i)
        parse_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
    } else if (type == "Prepend") {
      Normalizer s;
      s.kind = Normalizer::kPrepend;
      s.prepend = n.at("prepend").get<std::string>();
      normalizers_.push_back(s);
    } else if (type == "Replace") {
      Normalizer s;
      s.kind = Normalizer::kReplace;
      s.pattern = parse_pattern(n.at("pattern"), where + ".pattern");
      s.content = n.at("content").get<std::string>();
      normalizers_.push_back(s);
    } else if (type == "NFC") {
      if (unicode::nfc_available()) {  // through ICU
        Normalizer s;
        s.kind = Normalizer::kNfc;
        normalizers_.push_back(s);
      } else {
        // Built without ICU: text that is already NFC (almost all text) is unchanged by it.
        log::warn(where, ": NFC normalization is not applied: lawcat was built without ICU (libicu-dev); "
                         "input is assumed to be NFC already");
      }
    } else {
      throw DataError(where + ": normalizer type '" + type +
                      "' is not supported (supported: Sequence, Prepend, Replace, NFC)");
    }
  }

  void parse_pre_tokenizer(const json& p, const std::string& where) {
    if (p.is_null()) return;
    const std::string type = type_of(p, where);
    PreTokenizer s;
    if (type == "Sequence") {
      const auto& list = p.at("pretokenizers");
      for (size_t i = 0; i < list.size(); ++i)
        parse_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
      return;
    } else if (type == "Split") {
      s.kind = PreTokenizer::kSplit;
      s.pattern = parse_pattern(p.at("pattern"), where + ".pattern");
      s.behavior = parse_behavior(p.at("behavior").get<std::string>(), where + ".behavior");
      s.invert = get_or(p, "invert", false);
    } else if (type == "ByteLevel") {
      s.kind = PreTokenizer::kByteLevel;
      s.add_prefix_space = get_or(p, "add_prefix_space", true);
      s.use_regex = get_or(p, "use_regex", true);
      if (s.use_regex) s.regex = std::make_shared<Regex>(kGpt2Pattern, where + " (GPT-2 pattern)");
      byte_level_ = true;
    } else if (type == "Digits") {
      s.kind = PreTokenizer::kDigits;
      s.individual_digits = get_or(p, "individual_digits", false);
      s.regex = std::make_shared<Regex>(R"(\p{N})", where);
    } else if (type == "Metaspace") {
      s.kind = PreTokenizer::kMetaspace;
      s.replacement = get_or(p, "replacement", std::string("\xE2\x96\x81"));
      s.split = get_or(p, "split", true);
      if (p.contains("prepend_scheme") && p["prepend_scheme"].is_string()) {
        s.prepend_scheme = p["prepend_scheme"].get<std::string>();
      } else {
        s.prepend_scheme = get_or(p, "add_prefix_space", true) ? "always" : "never";
      }
      LAWCAT_CHECK(s.prepend_scheme == "always" || s.prepend_scheme == "first" || s.prepend_scheme == "never",
                   DataError, where << ".prepend_scheme: unknown value '" << s.prepend_scheme << "'");
    } else {
      throw DataError(where + ": pre-tokenizer type '" + type +
                      "' is not supported (supported: Sequence, Split, ByteLevel, Digits, Metaspace)");
    }
    pre_tokenizers_.push_back(std::move(s));
  }

  void parse_decoder(const json& d, const std::string& where) {
    if (d.is_null()) return;
    has_decoder_ = true;
    const std::string type = type_of(d, where);
    Decoder s;
    if (type == "Sequence") {
      const auto& list = d.at("decoders");
      for (size_t i = 0; i < list.size(); ++i)
        parse_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
      return;
    } else if (type == "ByteLevel") {
      s.kind = Decoder::kByteLevel;
    } else if (type == "ByteFallback") {
      s.kind = Decoder::kByteFallback;
    } else if (type == "Fuse") {
      s.kind = Decoder::kFuse;
    } else if (type == "Replace") {
      s.kind = Decoder::kReplace;
      const auto& p = d.at("pattern");
      LAWCAT_CHECK(p.contains("String"), DataError, where << ": only String patterns are supported here");
      s.pattern = p["String"].get<std::string>();
      s.content = d.at("content").get<std::string>();
    } else if (type == "Strip") {
      s.kind = Decoder::kStrip;
      s.content = d.at("content").get<std::string>();
      s.start = static_cast<size_t>(json_index(d.at("start"), where + ".start", 1 << 20));
      s.stop = static_cast<size_t>(json_index(d.at("stop"), where + ".stop", 1 << 20));
    } else if (type == "Metaspace") {
      s.kind = Decoder::kMetaspace;
      s.replacement = get_or(d, "replacement", std::string("\xE2\x96\x81"));
      std::string scheme = d.contains("prepend_scheme") && d["prepend_scheme"].is_string()
                               ? d["prepend_scheme"].get<std::string>()
                               : (get_or(d, "add_prefix_space", true) ? "always" : "never");
      s.prepend = scheme != "never";
    } else {
      throw DataError(where + ": decoder type '" + type +
                      "' is not supported (supported: Sequence, ByteLevel, ByteFallback, Fuse, "
                      "Replace, Strip, Metaspace)");
    }
    decoders_.push_back(std::move(s));
  }

  // A BOS/EOS id from the post-processor must name a token of this tokenizer: encode would
  // otherwise emit an id past the vocabulary (found by fuzz_tokenizer_json).
  int64_t checked_special_id(int64_t id, const std::string& where) const {
    LAWCAT_CHECK(id >= 0 && id < static_cast<int64_t>(id_to_token_.size()), DataError,
                 where << ": id " << id << " is not in the vocabulary (" << id_to_token_.size() << " tokens)");
    return id;
  }

  void parse_post_processor(const json& p, const std::string& where) {
    if (p.is_null()) return;
    const std::string type = type_of(p, where);
    if (type == "Sequence") {
      const auto& list = p.at("processors");
      for (size_t i = 0; i < list.size(); ++i)
        parse_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
    } else if (type == "TemplateProcessing") {
      // single: [{"SpecialToken": {"id": "<|begin_of_text|>"}}, {"Sequence": {"id": "A"}}]
      auto special_id = [&](const std::string& name) -> int64_t {
        const auto& st = p.at("special_tokens");
        LAWCAT_CHECK(st.contains(name), DataError, where << ": template token '" << name
                                                        << "' missing from special_tokens");
        const auto& ids = st[name].at("ids");
        LAWCAT_CHECK(ids.is_array() && ids.size() >= 1, DataError,
                     where << ".special_tokens." << name << ": no ids");
        return checked_special_id(json_index(ids[0], where + ".special_tokens." + name),
                                  where + ".special_tokens." + name);
      };
      bool seen_sequence = false;
      std::vector<int64_t> prefix, suffix;
      for (const auto& item : p.at("single")) {
        if (item.contains("Sequence")) {
          seen_sequence = true;
        } else if (item.contains("SpecialToken")) {
          int64_t id = special_id(item["SpecialToken"].at("id").get<std::string>());
          (seen_sequence ? suffix : prefix).push_back(id);
        }
      }
      if (!prefix.empty()) {
        bos_ = prefix.front();
        add_bos_default_ = true;
      }
      if (!suffix.empty()) eos_ = suffix.back();
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      bos_ = checked_special_id(json_index(p.at("cls").at(1), where + ".cls"), where + ".cls");
      eos_ = checked_special_id(json_index(p.at("sep").at(1), where + ".sep"), where + ".sep");
      add_bos_default_ = true;
    } else if (type != "ByteLevel") {  // ByteLevel only trims offsets
      log::warn(where, ": post-processor type '", type, "' ignored");
    }
  }

  // ---- encoding ----
  struct Segment {
    size_t begin, end;
    int64_t added;  // id of the added token, or -1 for ordinary text
  };

  // Splits the text on added tokens: at each position the longest added token
  // (tokenizers uses an Aho-Corasick automaton, leftmost-longest: the same matches).
  std::vector<Segment> split_added(const std::string& text) const {
    std::vector<Segment> out;
    size_t last = 0;  // end of the previous segment
    size_t i = 0;
    while (i < text.size()) {
      if (!added_first_bytes_[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      const AddedToken* hit = nullptr;
      for (const auto& a : added_by_length_) {
        if (text.compare(i, a.content.size(), a.content) != 0) continue;
        if (a.single_word && !single_word_ok(text, i, i + a.content.size())) continue;
        hit = &a;
        break;
      }
      if (!hit) {
        ++i;
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->lstrip) {
        while (b > last) {
          size_t k = b - 1;
          while (k > last && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
          size_t len = 0;
          if (!unicode::is_whitespace(unicode::decode_utf8(text, k, &len))) break;
          b = k;
        }
      }
      if (hit->rstrip) {
        while (e < text.size()) {
          size_t len = 0;
          if (!unicode::is_whitespace(unicode::decode_utf8(text, e, &len))) break;
          e += len;
        }
      }
      if (b > last) out.push_back({last, b, -1});
      out.push_back({b, e, hit->id});
      last = i = e;
    }
    if (last < text.size() || out.empty()) out.push_back({last, text.size(), -1});
    if (text.empty()) out.clear();
    return out;
  }

  static bool is_word_char(uint32_t cp) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
           cp == '_' || (cp >= 0x80 && !unicode::is_whitespace(cp));
  }
  static bool single_word_ok(const std::string& text, size_t b, size_t e) {
    size_t len = 0;
    if (b > 0) {
      size_t k = b - 1;
      while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
      if (is_word_char(unicode::decode_utf8(text, k, &len))) return false;
    }
    if (e < text.size() && is_word_char(unicode::decode_utf8(text, e, &len))) return false;
    return true;
  }

  std::string normalize(std::string s) const {
    for (const auto& n : normalizers_) {
      if (n.kind == Normalizer::kPrepend) {
        if (!s.empty()) s = n.prepend + s;
      } else if (n.kind == Normalizer::kNfc) {
        s = unicode::to_nfc(s);
      } else if (n.kind == Normalizer::kReplace) {
        if (!n.pattern.regex) {
          s = replace_all(s, n.pattern.literal, n.content);
        } else {
          std::string out;
          size_t prev = 0;
          for (const auto& [b, e] : n.pattern.find(s)) {
            out.append(s, prev, b - prev);
            out += n.content;
            prev = e;
          }
          out.append(s, prev, std::string::npos);
          s = std::move(out);
        }
      }
    }
    return s;
  }

  std::vector<Piece> pre_tokenize(std::string text, bool at_origin) const {
    std::vector<Piece> pieces;
    if (text.empty()) return pieces;
    pieces.push_back({std::move(text), at_origin});
    for (const auto& step : pre_tokenizers_) {
      std::vector<Piece> next;
      next.reserve(pieces.size());
      for (auto& p : pieces) apply(step, std::move(p), next);
      pieces.swap(next);
    }
    return pieces;
  }

  static void emit_split(const Piece& p, const std::vector<Range>& ranges, std::vector<Piece>& out) {
    for (const auto& [b, e] : ranges)
      out.push_back({p.text.substr(b, e - b), p.at_origin && b == 0});
  }

  void apply(const PreTokenizer& s, Piece p, std::vector<Piece>& out) const {
    switch (s.kind) {
      case PreTokenizer::kSplit: {
        auto parts = cover(p.text.size(), s.pattern.find(p.text), s.invert);
        emit_split(p, apply_behavior(parts, s.behavior), out);
        return;
      }
      case PreTokenizer::kDigits: {
        std::vector<Range> m;
        s.regex->find_all(p.text, m);
        emit_split(p, apply_behavior(cover(p.text.size(), m, false),
                                     s.individual_digits ? Behavior::kIsolated : Behavior::kContiguous),
                   out);
        return;
      }
      case PreTokenizer::kByteLevel: {
        if (s.add_prefix_space && p.text.rfind(' ', 0) != 0) p.text.insert(0, " ");
        std::vector<Piece> parts;
        if (s.use_regex) {
          std::vector<Range> m;
          s.regex->find_all(p.text, m);
          emit_split(p, apply_behavior(cover(p.text.size(), m, false), Behavior::kIsolated), parts);
        } else {
          parts.push_back(std::move(p));
        }
        for (auto& q : parts) out.push_back({unicode::bytes_to_byte_level(q.text), q.at_origin});
        return;
      }
      case PreTokenizer::kMetaspace: {
        p.text = replace_all(p.text, " ", s.replacement);
        const bool starts = p.text.rfind(s.replacement, 0) == 0;
        if (!starts && (s.prepend_scheme == "always" || (s.prepend_scheme == "first" && p.at_origin)))
          p.text.insert(0, s.replacement);
        if (!s.split) {
          out.push_back(std::move(p));
          return;
        }
        emit_split(p, apply_behavior(cover(p.text.size(), find_literal(p.text, s.replacement), false),
                                     Behavior::kMergedWithNext),
                   out);
        return;
      }
    }
  }

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  // One pre-token through the BPE model, appending its ids. Results are cached per word.
  void bpe_word(const std::string& word, std::vector<int64_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {  // a word that is itself a token is taken whole (Llama 3)
      auto it = vocab_.find(word);
      if (it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const bool cacheable = word.size() <= kMaxCachedWord;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids = merge_word(word);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();
      cache_.emplace(word, std::move(ids));
    }
  }

  // tokenizers' Word::merge_word + merge_all: characters (or byte fallback / unk) as
  // symbols, then repeatedly the pair of lowest merge rank, leftmost on ties.
  std::vector<int32_t> merge_word(const std::string& word) const {
    std::vector<int32_t> sym;  // symbol ids in order
    sym.reserve(word.size());
    bool prev_unk = false;
    for (size_t i = 0; i < word.size();) {
      size_t len = 0;
      unicode::decode_utf8(word, i, &len);
      const std::string ch = word.substr(i, len);
      auto it = char_ids_.find(ch);
      if (it != char_ids_.end()) {
        sym.push_back(it->second);
        prev_unk = false;
      } else if (byte_fallback_ && push_bytes(ch, sym)) {
        prev_unk = false;
      } else if (unk_id_ >= 0) {
        if (!(fuse_unk_ && prev_unk)) sym.push_back(unk_id_);
        prev_unk = true;
      }  // else: tokenizers drops a character it cannot represent
      i += len;
    }
    const int n = static_cast<int>(sym.size());
    if (n < 2 || merges_.empty()) return sym;
    std::vector<int> prev(n), next(n);
    std::vector<char> alive(n, 1);
    for (int i = 0; i < n; ++i) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
      int32_t rank;
      int pos;
      int32_t new_id;
    };
    auto worse = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
    auto consider = [&](int l) {
      if (l < 0 || next[l] < 0) return;
      auto m = merges_.find(pair_key(sym[l], sym[next[l]]));
      if (m != merges_.end()) heap.push({m->second.rank, l, m->second.new_id});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      if (!alive[c.pos] || next[c.pos] < 0) continue;
      const int r = next[c.pos];
      // Stale entry? The pair at pos must still merge into the same token.
      auto m = merges_.find(pair_key(sym[c.pos], sym[r]));
      if (m == merges_.end() || m->second.new_id != c.new_id) continue;
      sym[c.pos] = c.new_id;
      alive[r] = 0;
      next[c.pos] = next[r];
      if (next[r] >= 0) prev[next[r]] = c.pos;
      consider(prev[c.pos]);
      consider(c.pos);
    }
    std::vector<int32_t> out;
    for (int i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
    return out;
  }

  // <0xNN> ids for every byte of `ch`; false (nothing pushed) when one is missing.
  bool push_bytes(const std::string& ch, std::vector<int32_t>& sym) const {
    std::vector<int32_t> ids;
    char name[8];
    for (unsigned char b : ch) {
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto it = vocab_.find(name);
      if (it == vocab_.end()) return false;
      ids.push_back(it->second);
    }
    sym.insert(sym.end(), ids.begin(), ids.end());
    return true;
  }

  // ---- decoding ----
  void check_id(int64_t id, size_t pos) const {
    LAWCAT_CHECK(id >= 0 && id < vocab_size() && (!id_to_token_[id].empty()), DataError,
                 file_.string() << ": cannot decode id " << id << " at position " << pos
                                << ": not in the vocabulary (size " << vocab_size() << ")");
  }
  const std::string& token_text(int64_t id) const { return id_to_token_[id]; }

  // tokenizers' decoder chain over token strings. `at_start`: the tokens begin the text
  // (Strip / Metaspace remove the leading space only there). `lossy`: byte fallback of
  // invalid UTF-8 gives U+FFFD as in tokenizers (false for streaming, raw bytes).
  std::string run_decoders(std::vector<std::string> tokens, bool at_start, bool lossy) const {
    if (!has_decoder_) {  // tokenizers joins with spaces
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    for (const auto& d : decoders_) {
      switch (d.kind) {
        case Decoder::kByteLevel: {
          std::string bytes;
          for (const auto& t : tokens) {
            std::string tb;
            bool ok = true;
            for (size_t i = 0; i < t.size();) {
              size_t len = 0;
              int b = unicode::unicode_to_byte(unicode::decode_utf8(t, i, &len));
              if (b < 0) {
                ok = false;
                break;
              }
              tb += static_cast<char>(b);
              i += len;
            }
            bytes += ok ? tb : t;
          }
          tokens.assign(1, lossy ? unicode::to_valid_utf8(bytes) : bytes);
          break;
        }
        case Decoder::kByteFallback: {
          std::vector<std::string> out;
          std::string pending;
          auto flush = [&] {
            if (pending.empty()) return;
            if (!lossy || unicode::is_valid_utf8(pending)) out.push_back(pending);
            else for (size_t k = 0; k < pending.size(); ++k) out.push_back("\xEF\xBF\xBD");
            pending.clear();
          };
          for (auto& t : tokens) {
            int b = -1;
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
              const std::string hex = t.substr(3, 2);  // `end` points into it: keep it alive
              char* end = nullptr;
              long v = std::strtol(hex.c_str(), &end, 16);
              if (end && *end == '\0') b = static_cast<int>(v);
            }
            if (b >= 0) {
              pending += static_cast<char>(b);
            } else {
              flush();
              out.push_back(std::move(t));
            }
          }
          flush();
          tokens.swap(out);
          break;
        }
        case Decoder::kReplace:
          for (auto& t : tokens) t = replace_all(t, d.pattern, d.content);
          break;
        case Decoder::kFuse: {
          std::string all;
          for (const auto& t : tokens) all += t;
          tokens.assign(1, all);
          break;
        }
        case Decoder::kStrip:
          for (auto& t : tokens) {
            if (at_start)
              for (size_t k = 0; k < d.start && t.rfind(d.content, 0) == 0; ++k) t.erase(0, d.content.size());
            for (size_t k = 0; k < d.stop && t.size() >= d.content.size() &&
                               t.compare(t.size() - d.content.size(), d.content.size(), d.content) == 0;
                 ++k)
              t.erase(t.size() - d.content.size());
          }
          break;
        case Decoder::kMetaspace:
          for (size_t i = 0; i < tokens.size(); ++i) {
            // tokenizers drops every replacement char of the first token (not only the leading one).
            const bool drop = i == 0 && d.prepend && at_start;
            tokens[i] = replace_all(tokens[i], d.replacement, drop ? "" : " ");
          }
          break;
      }
    }
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  static constexpr size_t kMaxCachedWord = 256;
  static constexpr size_t kMaxCacheEntries = 1 << 16;

  std::filesystem::path file_;
  std::unordered_map<std::string, int32_t> vocab_;     // model vocab: token -> id
  std::unordered_map<std::string, int32_t> char_ids_;  // single-character tokens
  std::unordered_map<uint64_t, MergeInfo> merges_;     // (left id, right id) -> rank, merged id
  std::vector<std::string> id_to_token_;               // [V] model and added tokens
  std::vector<AddedToken> added_, added_by_length_;
  bool added_first_bytes_[256] = {};
  std::unordered_set<int64_t> special_ids_;
  std::vector<Normalizer> normalizers_;
  std::vector<PreTokenizer> pre_tokenizers_;
  std::vector<Decoder> decoders_;
  bool has_decoder_ = false;
  bool byte_level_ = false;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace

namespace detail {
std::unique_ptr<TokenizerBase> make_bpe_json(const std::filesystem::path& tokenizer_json) {
  return std::make_unique<BpeTokenizer>(tokenizer_json);
}
}  // namespace detail

std::unique_ptr<Tokenizer> load_bpe_json(const std::filesystem::path& tokenizer_json) {
  return detail::make_bpe_json(tokenizer_json);
}

}  // namespace lawcat::text
