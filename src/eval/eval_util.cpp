#include "eval/eval_util.h"

#include <algorithm>
#include <cctype>
#include <limits>

#include "util/error.h"

namespace lawcat::eval {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t Rng::uniform_int(int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  const uint64_t range = static_cast<uint64_t>(hi - lo) + 1;  // > 0 for hi > lo
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % range;
  uint64_t x;
  do {
    x = next();
  } while (x >= limit);
  return lo + static_cast<int64_t>(x % range);
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

uint64_t sample_seed(uint64_t seed, const std::string& task, int64_t length, int64_t depth, int64_t sample) {
  // FNV-1a over the coordinates, then mixed through splitmix64.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ULL;
    }
  };
  mix(seed);
  for (char c : task) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  mix(static_cast<uint64_t>(length));
  mix(static_cast<uint64_t>(depth));
  mix(static_cast<uint64_t>(sample));
  Rng r(h);
  return r.next();
}

std::vector<int64_t> encode_prompt(const text::Tokenizer& tokenizer, const std::string& text) {
  return tokenizer.encode(text, /*add_bos=*/tokenizer.add_bos_by_default());
}

FitResult fit_units(const std::function<int64_t(int64_t)>& tokens_for, int64_t target, int64_t max_units,
                    int64_t hint) {
  FitResult r;
  auto probe = [&](int64_t u) {
    ++r.probes;
    return tokens_for(u);
  };
  const int64_t t0 = probe(0);
  if (t0 > target || max_units <= 0) {
    r.units = 0;
    r.tokens = t0;
    return r;
  }
  int64_t lo = 0, lo_tokens = t0;  // tokens_for(lo) <= target
  int64_t hi = max_units + 1;      // tokens_for(hi) > target (or past the end)
  if (hint <= 0) {
    // Estimate the rate (tokens per unit) from a small probe and extrapolate.
    const int64_t u1 = std::min<int64_t>(max_units, std::max<int64_t>(64, (target - t0) / 2));
    const int64_t t1 = probe(u1);
    if (t1 <= target) {
      lo = u1;
      lo_tokens = t1;
    } else {
      hi = u1;
    }
    const double rate = std::max(1e-6, static_cast<double>(t1 - t0) / static_cast<double>(std::max<int64_t>(1, u1)));
    hint = static_cast<int64_t>(static_cast<double>(target - t0) / rate);
  }
  hint = std::clamp<int64_t>(hint, lo + 1, std::max<int64_t>(lo + 1, std::min(hi - 1, max_units)));
  if (hint > lo && hint < hi) {
    // Gallop from the hint until the answer is bracketed; the first step is the
    // distance to the target at the hint's tokens-per-unit rate (plus a margin).
    const int64_t th = probe(hint);
    const int64_t gap = th > target ? th - target : target - th;
    int64_t step = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(gap) * static_cast<double>(hint) /
                                                             static_cast<double>(std::max<int64_t>(1, th))) + 2);
    if (th <= target) {
      lo = hint;
      lo_tokens = th;
      int64_t u = hint;
      while (true) {
        u = std::min(u + step, max_units);
        if (u >= hi || u <= lo) break;
        const int64_t t = probe(u);
        if (t <= target) {
          lo = u;
          lo_tokens = t;
          if (u == max_units) break;
        } else {
          hi = u;
          break;
        }
        step *= 2;
      }
    } else {
      hi = hint;
      int64_t u = hint;
      while (true) {
        u = std::max(u - step, lo);
        if (u <= lo) break;
        const int64_t t = probe(u);
        if (t <= target) {
          lo = u;
          lo_tokens = t;
          break;
        }
        hi = u;
        step *= 2;
      }
    }
  }
  // Binary search: invariant tokens_for(lo) <= target < tokens_for(hi).
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (mid > max_units) {
      hi = mid;
      continue;
    }
    const int64_t t = probe(mid);
    if (t <= target) {
      lo = mid;
      lo_tokens = t;
    } else {
      hi = mid;
    }
  }
  r.units = lo;
  r.tokens = lo_tokens;
  return r;
}

std::vector<std::string> split_whitespace(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < n && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) out.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string collapse_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const auto& w : split_whitespace(text)) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  return std::string(text.substr(b, e - b));
}

namespace {
// Length of a closing quote/bracket at text[i] (ASCII or UTF-8 ” ’), 0 if none.
size_t closing_at(std::string_view t, size_t i) {
  if (i >= t.size()) return 0;
  const char c = t[i];
  if (c == '"' || c == '\'' || c == ')' || c == ']') return 1;
  if (i + 2 < t.size() && static_cast<unsigned char>(c) == 0xE2 && static_cast<unsigned char>(t[i + 1]) == 0x80 &&
      (static_cast<unsigned char>(t[i + 2]) == 0x9D || static_cast<unsigned char>(t[i + 2]) == 0x99))
    return 3;
  return 0;
}
// Whether a sentence may start at text[i].
bool sentence_start_at(std::string_view t, size_t i) {
  if (i >= t.size()) return false;
  const unsigned char c = static_cast<unsigned char>(t[i]);
  if (std::isupper(c) || std::isdigit(c) || c == '"' || c == '\'' || c == '(' || c == '[') return true;
  // UTF-8 “ ‘ (E2 80 9C / 98)
  return c == 0xE2 && i + 2 < t.size() && static_cast<unsigned char>(t[i + 1]) == 0x80 &&
         (static_cast<unsigned char>(t[i + 2]) == 0x9C || static_cast<unsigned char>(t[i + 2]) == 0x98);
}
bool is_abbreviation(std::string_view t, size_t dot) {
  size_t b = dot;
  while (b > 0 && std::isalpha(static_cast<unsigned char>(t[b - 1]))) --b;
  const std::string word = to_lower(t.substr(b, dot - b));
  static const char* kAbbrev[] = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "mt", "vs", "etc", "prof", "capt"};
  if (word.size() == 1) return true;  // initials: "J. R. R."
  for (const char* a : kAbbrev)
    if (word == a) return true;
  return false;
}
}  // namespace

std::vector<std::string> split_sentences(std::string_view raw) {
  const std::string text = collapse_whitespace(raw);
  const std::string_view t(text);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c != '.' && c != '!' && c != '?') continue;
    if (c == '.' && is_abbreviation(t, i)) continue;
    size_t j = i + 1;
    while (size_t k = closing_at(t, j)) j += k;
    if (j >= t.size()) break;
    if (t[j] == ' ' && sentence_start_at(t, j + 1)) {
      out.emplace_back(t.substr(start, j - start));
      start = j + 1;
      i = j;
    }
  }
  if (start < t.size()) out.emplace_back(t.substr(start));
  return out;
}

int64_t count_occurrences(std::string_view text, std::string_view needle) {
  if (needle.empty()) return 0;
  int64_t n = 0;
  for (size_t p = text.find(needle); p != std::string_view::npos; p = text.find(needle, p + needle.size())) ++n;
  return n;
}

void require_data_file(const std::filesystem::path& file, const std::string& what) {
  LAWCAT_CHECK(std::filesystem::is_regular_file(file), DataError,
               file.string() << ": " << what << " not found (eval data is under ../shared/data/eval; "
                             << "set --data or $LAWCAT_SHARED_DATA)");
}

}  // namespace lawcat::eval
