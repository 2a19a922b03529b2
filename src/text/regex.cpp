#include "text/regex.h"

#include "util/error.h"

#ifdef LAWCAT_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

namespace lawcat::text {

#ifdef LAWCAT_HAVE_PCRE2

bool Regex::available() { return true; }

Regex::Regex(const std::string& pattern, const std::string& where) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // MATCH_INVALID_UTF: arbitrary bytes are allowed in subjects; invalid sequences never match
  // (byte-level BPE then encodes them byte by byte like any other unmatched text).
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off,
                                   nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw DataError(where + ": regex does not compile at offset " + std::to_string(err_off) +
                    ": " + reinterpret_cast<const char*>(msg) + " (pattern: " + pattern + ")");
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  LAWCAT_CHECK(md, Error, "regex: out of memory");
  auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t start = 0;
  uint32_t no_jit = 0;
  uint32_t after_empty = 0;  // after an empty match: a non-empty one at the same place, or step
  while (start <= s.size()) {
    int rc = pcre2_match(code, subject, s.size(), start, no_jit | after_empty, md.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !no_jit) {  // deep backtracking: interpreter instead
      no_jit = PCRE2_NO_JIT;
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH && after_empty) {
      after_empty = 0;
      start += 1;
      while (start < s.size() && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) ++start;
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      throw DataError("regex match failed (" + std::string(reinterpret_cast<const char*>(msg)) +
                      ") for pattern " + pattern_);
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      after_empty = 0;
    } else {
      after_empty = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
    }
    start = e;
  }
}

#else  // no PCRE2

bool Regex::available() { return false; }

Regex::Regex(const std::string& pattern, const std::string& where) : pattern_(pattern) {
  throw DataError(where + ": this build has no PCRE2 (libpcre2-8), needed for the regex pre-tokenizer; "
                  "install libpcre2-dev and re-run cmake");
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view, std::vector<std::pair<size_t, size_t>>&) const {}

#endif

}  // namespace lawcat::text
