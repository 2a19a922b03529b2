#include "dataset/bpe_trainer.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_map>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::dataset {

namespace {
size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = std::min(utf8_len(static_cast<unsigned char>(s[i])), s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// " word" units: a single space may lead a run of non-space characters; any
// other whitespace character is a unit of its own.
void split_words(const std::string& text, std::map<std::string, int64_t>& counts) {
  size_t i = 0;
  const size_t n = text.size();
  auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (i < n) {
    size_t start = i;
    if (text[i] == ' ' && i + 1 < n && !is_space(text[i + 1])) {
      ++i;
    } else if (is_space(text[i])) {
      counts[text.substr(i, 1)]++;
      ++i;
      continue;
    }
    while (i < n && !is_space(text[i])) ++i;
    counts[text.substr(start, i - start)]++;
  }
}
}  // namespace

int64_t train_llama2c_tokenizer(const std::vector<std::string>& documents, const std::filesystem::path& out,
                                const BpeTrainOptions& o) {
  LAWCAT_CHECK(o.vocab_size >= 260, ConfigError,
               "tokenizer vocab_size must be at least 260 (3 special + 256 bytes + 1), got " << o.vocab_size);
  LAWCAT_CHECK(!documents.empty(), DataError, "cannot train a tokenizer on an empty corpus");
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  std::vector<float> scores = {0.f, 0.f, 0.f};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    pieces.push_back(buf);
    scores.push_back(0.f);
  }

  // Words (with llama2.c's dummy " " prefix per document) and their counts.
  std::map<std::string, int64_t> word_counts;
  for (const auto& d : documents) split_words(" " + d, word_counts);

  // Characters by frequency; " " always (the encoder's dummy prefix).
  std::map<std::string, int64_t> char_counts;
  for (const auto& [w, c] : word_counts)
    for (const auto& ch : utf8_chars(w)) char_counts[ch] += c;
  std::vector<std::pair<int64_t, std::string>> by_freq;
  for (const auto& [ch, c] : char_counts) by_freq.emplace_back(-c, ch);
  std::sort(by_freq.begin(), by_freq.end());
  const int64_t room = o.vocab_size - static_cast<int64_t>(pieces.size());
  const int64_t n_chars = std::min<int64_t>({static_cast<int64_t>(by_freq.size()), o.max_chars, room});
  std::unordered_map<std::string, int32_t> piece_id;
  for (size_t i = 0; i < pieces.size(); ++i) piece_id.emplace(pieces[i], static_cast<int32_t>(i));
  auto add_piece = [&](const std::string& p, float score) {
    if (piece_id.count(p)) return;
    piece_id.emplace(p, static_cast<int32_t>(pieces.size()));
    pieces.push_back(p);
    scores.push_back(score);
  };
  if (!char_counts.count(" ")) add_piece(" ", 0.f);
  for (int64_t i = 0; i < n_chars && static_cast<int64_t>(pieces.size()) < o.vocab_size; ++i)
    add_piece(by_freq[i].second, 0.f);

  // Words as symbol sequences; -1 marks a character without a piece (byte
  // fallback at encode time), which never merges.
  struct Word {
    std::vector<int32_t> sym;
    int64_t count;
  };
  std::vector<Word> words;
  for (const auto& [w, c] : word_counts) {
    Word wd{{}, c};
    for (const auto& ch : utf8_chars(w)) {
      auto it = piece_id.find(ch);
      wd.sym.push_back(it == piece_id.end() ? -1 : it->second);
    }
    if (wd.sym.size() >= 2) words.push_back(std::move(wd));
  }

  int64_t rank = 0;
  while (static_cast<int64_t>(pieces.size()) < o.vocab_size) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pair_counts;  // ordered: deterministic ties
    for (const auto& w : words)
      for (size_t i = 0; i + 1 < w.sym.size(); ++i)
        if (w.sym[i] >= 0 && w.sym[i + 1] >= 0) pair_counts[{w.sym[i], w.sym[i + 1]}] += w.count;
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [p, c] : pair_counts)
      if (c > best_count) best = p, best_count = c;
    if (best_count < o.min_pair_count) break;
    const std::string merged = pieces[best.first] + pieces[best.second];
    // Scores fall with rank: the encoder applies earlier merges first.
    add_piece(merged, -static_cast<float>(++rank));
    const int32_t id = piece_id.at(merged);
    for (auto& w : words) {
      std::vector<int32_t> next;
      next.reserve(w.sym.size());
      for (size_t i = 0; i < w.sym.size(); ++i) {
        if (i + 1 < w.sym.size() && w.sym[i] == best.first && w.sym[i + 1] == best.second) {
          next.push_back(id);
          ++i;
        } else {
          next.push_back(w.sym[i]);
        }
      }
      w.sym.swap(next);
    }
  }

  int32_t max_len = 0;
  for (const auto& p : pieces) max_len = std::max<int32_t>(max_len, static_cast<int32_t>(p.size()));
  fs::atomic_write(out, [&](std::FILE* f) {
    auto put = [&](const void* d, size_t n) {
      if (std::fwrite(d, 1, n, f) != n) throw Error("short write");
    };
    put(&max_len, 4);
    for (size_t i = 0; i < pieces.size(); ++i) {
      int32_t len = static_cast<int32_t>(pieces[i].size());
      put(&scores[i], 4);
      put(&len, 4);
      put(pieces[i].data(), pieces[i].size());
    }
  });
  log::info("trained a ", pieces.size(), "-piece BPE tokenizer (", n_chars, " characters, ", rank, " merges) -> ",
            out.string());
  return static_cast<int64_t>(pieces.size());
}

}  // namespace lawcat::dataset
