// llama2.c tokenizer.bin (Karpathy's run.c format), encoded and decoded exactly as run.c.
//
// File: int32 max_token_len, then per token {float32 score, int32 len, len bytes}, to EOF.
// Id 0 <unk>, 1 BOS, 2 EOS, 3..258 byte fallback "<0x00>".."<0xFF>", then merges.
// Pieces store SentencePiece's U+2581 as a plain space.
//
// Encoding (run.c `encode`): prepend a dummy " " token when the text is non-empty,
// map each UTF-8 character to its piece (else its bytes to ids byte+3), then
// repeatedly merge the adjacent pair whose concatenation is a piece with the highest
// score (leftmost on ties). run.c rescans all pairs per merge (O(n^2)); here a heap
// of candidate pairs with lazy invalidation gives the same merges in O(n log n).
#include <cstdint>
#include <cstring>
#include <queue>
#include <unordered_map>

#include "text/tokenizer_impl.h"
#include "text/unicode.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::text {
namespace {

constexpr int64_t kUnk = 0, kBos = 1, kEos = 2, kByte0 = 3;
constexpr float kNoMerge = -1e10f;  // run.c's initial best_score: scores at or below never merge

// "<0xNN>" -> NN, else -1 (run.c: sscanf(piece, "<0x%02hhX>")).
int parse_byte_piece(const std::string& p) {
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    char c = p[k];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

class Llama2cTokenizer : public detail::TokenizerBase {
 public:
  explicit Llama2cTokenizer(const std::filesystem::path& file) : file_(file) {
    std::error_code ec;
    LAWCAT_CHECK(std::filesystem::is_regular_file(file, ec), DataError,
                 file.string() << ": llama2.c tokenizer not found");
    const std::string data = fs::read_text(file);
    auto fail = [&](size_t offset, const std::string& what) {
      throw DataError(file.string() + ": corrupt llama2.c tokenizer at offset " +
                      std::to_string(offset) + ": " + what);
    };
    if (data.size() < 4) fail(0, "file has " + std::to_string(data.size()) +
                                  " bytes, expected at least the 4-byte max_token_len header");
    int32_t max_len = 0;
    std::memcpy(&max_len, data.data(), 4);
    if (max_len <= 0 || max_len > (1 << 16))
      fail(0, "max_token_len " + std::to_string(max_len) + " is not in [1, 65536]");
    size_t off = 4;
    while (off < data.size()) {
      const size_t id = pieces_.size();
      if (data.size() - off < 8)
        fail(off, "truncated header of token " + std::to_string(id) + " (needs 8 bytes: score, len; " +
                      std::to_string(data.size() - off) + " left)");
      float score;
      int32_t len;
      std::memcpy(&score, data.data() + off, 4);
      std::memcpy(&len, data.data() + off + 4, 4);
      if (len < 0 || len > max_len)
        fail(off + 4, "token " + std::to_string(id) + " has length " + std::to_string(len) +
                          ", expected 0.." + std::to_string(max_len) + " (max_token_len)");
      off += 8;
      if (data.size() - off < static_cast<size_t>(len))
        fail(off, "truncated text of token " + std::to_string(id) + " (needs " +
                      std::to_string(len) + " bytes, " + std::to_string(data.size() - off) + " left)");
      pieces_.emplace_back(data.data() + off, len);
      scores_.push_back(score);
      off += len;
    }
    LAWCAT_CHECK(pieces_.size() >= 3, DataError,
                 file.string() << ": llama2.c tokenizer has " << pieces_.size()
                               << " tokens, expected at least 3 (<unk>, BOS, EOS)");
    // run.c looks pieces up by binary search; with duplicate pieces the lowest id wins here.
    lookup_.reserve(pieces_.size() * 2);
    for (size_t i = 0; i < pieces_.size(); ++i) lookup_.emplace(pieces_[i], static_cast<int32_t>(i));
    has_byte_fallback_ = pieces_.size() >= kByte0 + 256;
    bos_ = kBos;
    eos_ = kEos;
    log::debug("llama2.c tokenizer ", file.string(), ": ", pieces_.size(), " tokens");
  }

  std::vector<int64_t> encode(const std::string& text, bool add_bos, bool add_eos) const override {
    std::vector<int32_t> tokens;
    tokens.reserve(text.size() + 2);
    // run.c keeps BOS in the token list while merging; so do we (it never merges in practice).
    if (add_bos && bos_ >= 0) tokens.push_back(static_cast<int32_t>(bos_));
    if (!text.empty()) push_text(" ", tokens);  // add_dummy_prefix
    // Characters: a lead byte and up to 3 continuation bytes (run.c's loop, byte by byte).
    size_t i = 0;
    while (i < text.size()) {
      size_t n = 1;
      while (i + n < text.size() && n < 4 && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
      push_text(std::string_view(text).substr(i, n), tokens);
      i += n;
    }
    merge(tokens);
    std::vector<int64_t> out(tokens.begin(), tokens.end());
    if (add_eos && eos_ >= 0) out.push_back(eos_);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string out;
    int64_t prev = -1;
    for (int64_t id : ids) {
      out += decode_piece(prev, id);
      prev = id;
    }
    return unicode::to_valid_utf8(out);
  }

  // run.c `decode`: strip the leading space after BOS (here also at the start of
  // the text, where it is encode's dummy prefix), "<0xNN>" -> that raw byte.
  std::string decode_piece(int64_t prev, int64_t id) const override {
    LAWCAT_CHECK(id >= 0 && id < vocab_size(), DataError,
                 file_.string() << ": cannot decode id " << id << ": outside the vocabulary [0, "
                                << vocab_size() << ")");
    if (is_special(id)) return {};
    const std::string& p = pieces_[id];
    if (int b = parse_byte_piece(p); b >= 0) return std::string(1, static_cast<char>(b));
    if ((prev < 0 || prev == bos_) && !p.empty() && p[0] == ' ') return p.substr(1);
    return p;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  std::string kind() const override { return "llama2c"; }
  std::string id_to_piece(int64_t id) const override {
    return id >= 0 && id < vocab_size() ? pieces_[id] : std::string();
  }
  int64_t piece_to_id(const std::string& piece) const override {
    auto it = lookup_.find(piece);
    return it == lookup_.end() ? -1 : it->second;
  }

 private:
  int32_t find(std::string_view s) const {
    auto it = lookup_.find(std::string(s));
    return it == lookup_.end() ? -1 : it->second;
  }

  // One character: its piece, else one byte-fallback id per byte (else <unk>).
  void push_text(std::string_view ch, std::vector<int32_t>& tokens) const {
    if (int32_t id = find(ch); id >= 0) {
      tokens.push_back(id);
      return;
    }
    for (unsigned char b : ch)
      tokens.push_back(has_byte_fallback_ ? static_cast<int32_t>(kByte0 + b) : static_cast<int32_t>(kUnk));
  }

  // Greedy merges by highest merged-piece score, leftmost first (run.c's while loop).
  void merge(std::vector<int32_t>& tokens) const {
    const int n = static_cast<int>(tokens.size());
    if (n < 2) return;
    std::vector<int> prev(n), next(n), version(n, 0);
    for (int i = 0; i < n; ++i) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
      float score;
      int left;      // index of the left token (original order is kept, so leftmost = smallest)
      int right;
      int merged;    // id of the merged piece
      int vl, vr;    // versions of left and right when the candidate was made
    };
    auto worse = [](const Cand& a, const Cand& b) {
      return a.score != b.score ? a.score < b.score : a.left > b.left;
    };
    std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
    std::string buf;
    auto consider = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      buf.assign(pieces_[tokens[l]]);
      buf += pieces_[tokens[r]];
      auto it = lookup_.find(buf);
      if (it == lookup_.end() || !(scores_[it->second] > kNoMerge)) return;
      heap.push({scores_[it->second], l, r, it->second, version[l], version[r]});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      if (version[c.left] != c.vl || version[c.right] != c.vr || next[c.left] != c.right) continue;
      tokens[c.left] = c.merged;
      ++version[c.left];
      version[c.right] = -1;  // removed
      next[c.left] = next[c.right];
      if (next[c.left] >= 0) prev[next[c.left]] = c.left;
      consider(prev[c.left], c.left);
      consider(c.left, next[c.left]);
    }
    std::vector<int32_t> out;
    out.reserve(n);
    for (int i = 0; i >= 0; i = next[i]) out.push_back(tokens[i]);
    tokens.swap(out);
  }

  std::filesystem::path file_;
  std::vector<std::string> pieces_;  // [V] piece bytes (space, not U+2581)
  std::vector<float> scores_;        // [V] merge score
  std::unordered_map<std::string, int32_t> lookup_;
  bool has_byte_fallback_ = false;
};

}  // namespace

namespace detail {
std::unique_ptr<TokenizerBase> make_llama2c(const std::filesystem::path& tokenizer_bin) {
  return std::make_unique<Llama2cTokenizer>(tokenizer_bin);
}
}  // namespace detail

std::unique_ptr<Tokenizer> load_llama2c(const std::filesystem::path& tokenizer_bin) {
  return detail::make_llama2c(tokenizer_bin);
}

}  // namespace lawcat::text
