// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) for the
// tokenizer.json pre-tokenizers. Patterns use the Oniguruma/Rust syntax HF writes
// (\p{L}, (?i:...), lookahead), which PCRE2 reads as is.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lawcat::text {

class Regex {
 public:
  // Throws DataError mentioning `where` (file and JSON path) when the pattern does
  // not compile, or when this build has no PCRE2.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [start, end) of the successive non-overlapping, non-empty matches in `s`.
  // Bytes that are not valid UTF-8 never match. Thread-safe.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

  const std::string& pattern() const { return pattern_; }
  static bool available();  // false when built without PCRE2

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace lawcat::text
