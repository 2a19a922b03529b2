// text/llama2c: tokenizer.bin encoded as llama2.c run.c does. Oracles: a literal
// transcription of run.c's O(n^2) merge loop (below), and the SentencePiece encoder of
// the same Llama 2 vocabulary (tokenizer.model).
#include <cstring>
#include <random>

#include "common/catch.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;

namespace {

// run.c's encode, transcribed: vocab/scores read straight from the file.
struct RunC {
  std::vector<std::string> vocab;
  std::vector<float> scores;
  explicit RunC(const std::filesystem::path& path) {
    std::string d = fs::read_text(path);
    size_t off = 4;
    while (off < d.size()) {
      float s;
      int32_t len;
      std::memcpy(&s, d.data() + off, 4);
      std::memcpy(&len, d.data() + off + 4, 4);
      off += 8;
      vocab.emplace_back(d.data() + off, len);
      scores.push_back(s);
      off += len;
    }
  }
  int lookup(const std::string& s) const {
    for (size_t i = 0; i < vocab.size(); ++i)
      if (vocab[i] == s) return static_cast<int>(i);
    return -1;
  }
  std::vector<int64_t> encode(const std::string& text, bool bos) const {
    std::vector<int> tokens;
    if (bos) tokens.push_back(1);
    if (!text.empty()) tokens.push_back(lookup(" "));
    std::string buf;
    for (size_t i = 0; i < text.size(); ++i) {
      if ((text[i] & 0xC0) != 0x80) buf.clear();
      buf += text[i];
      if (i + 1 < text.size() && (text[i + 1] & 0xC0) == 0x80 && buf.size() < 4) continue;
      int id = lookup(buf);
      if (id != -1) {
        tokens.push_back(id);
      } else {
        for (unsigned char c : buf) tokens.push_back(c + 3);
      }
      buf.clear();
    }
    while (true) {
      float best_score = -1e10f;
      int best_id = -1, best_idx = -1;
      for (size_t i = 0; i + 1 < tokens.size(); ++i) {
        int id = lookup(vocab[tokens[i]] + vocab[tokens[i + 1]]);
        if (id != -1 && scores[id] > best_score) {
          best_score = scores[id];
          best_id = id;
          best_idx = static_cast<int>(i);
        }
      }
      if (best_idx == -1) break;
      tokens[best_idx] = best_id;
      tokens.erase(tokens.begin() + best_idx + 1);
    }
    return std::vector<int64_t>(tokens.begin(), tokens.end());
  }
};

std::string random_text(std::mt19937& rng, int max_chars) {
  static const std::vector<std::string> pool = {
      "a", "e", "t", "h", "o", "n", " ", " ", " ", "the", " was", "Lily", ".", ",", "!", "\n",
      "1", "7", "é", "ß", "日", "本", "😀", "\t", "  ", "Once", " upon", "'s", "\xC3", "\x80"};
  std::uniform_int_distribution<int> n(0, max_chars), pick(0, static_cast<int>(pool.size()) - 1);
  std::string s;
  for (int i = n(rng); i > 0; --i) s += pool[pick(rng)];
  return s;
}

bool mentions(const std::exception& e, const std::string& what) {
  return std::string(e.what()).find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("llama2c: tok512.bin matches a transcription of run.c", "[text][llama2c]") {
  LAWCAT_SHARED_OR_SKIP(path, "models/stories260K/tok512.bin");
  auto tok = text::load_llama2c(path);
  RunC ref(path);
  CHECK(tok->kind() == "llama2c");
  CHECK(tok->vocab_size() == 512);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    const std::string s = random_text(rng, 30);
    CAPTURE(s);
    const bool bos = i % 2 == 0;
    REQUIRE(tok->encode(s, bos) == ref.encode(s, bos));
  }
  const std::string story = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
  auto ids = tok->encode(story, true, true);
  CHECK(ids == [&] { auto r = ref.encode(story, true); r.push_back(2); return r; }());
  CHECK(tok->decode(ids) == story);
  CHECK(tok->encode("").empty());
  CHECK(tok->encode("", true) == std::vector<int64_t>{1});
}

TEST_CASE("llama2c: round trips and streaming as run.c decode", "[text][llama2c]") {
  LAWCAT_SHARED_OR_SKIP(path, "models/stories260K/tok512.bin");
  auto tok = text::load_llama2c(path);
  for (std::string s : {"Once upon a time, Lily said \"hi!\"\n\nThe end.", "Café 日本 😀", "  two spaces",
                        "x"}) {
    CAPTURE(s);
    auto ids = tok->encode(s, true);
    CHECK(tok->decode(ids) == s);
    std::string streamed;
    int64_t prev = -1;
    for (auto id : ids) {
      streamed += tok->decode_piece(prev, id);
      prev = id;
    }
    CHECK(streamed == s);
  }
  // run.c: a piece after BOS loses its leading space; elsewhere it keeps it.
  int64_t once = tok->encode("Once")[0];
  REQUIRE(tok->id_to_piece(once).rfind(" ", 0) == 0);
  CHECK(tok->decode_piece(1, once) == tok->id_to_piece(once).substr(1));
  CHECK(tok->decode_piece(once, once) == tok->id_to_piece(once));
  CHECK(tok->decode_piece(5, 3 + 'A') == "A");  // <0x41>
  CHECK_THROWS_AS(tok->decode_piece(-1, 512), DataError);
}

TEST_CASE("llama2c: Llama 2 tokenizer.bin agrees with the SentencePiece model", "[text][llama2c][spm]") {
  LAWCAT_SHARED_OR_SKIP(bin, "tokenizers/llama2/tokenizer.bin");
  auto tok = text::load_llama2c(bin);
  CHECK(tok->vocab_size() == 32000);
  CHECK(tok->encode("Once upon a time,") == std::vector<int64_t>{9038, 2501, 263, 931, 29892});
  CHECK(tok->encode("Once upon a time,", true) == std::vector<int64_t>{1, 9038, 2501, 263, 931, 29892});
  const std::vector<std::string> sentences = {
      "Once upon a time, there was a little girl named Lily.",
      "She loved to play outside in the park. One day, she saw a big, red ball.",
      "The quick brown fox jumps over the lazy dog 1234567890 times!",
      "Hello world\nNew line\tand tab.",
      "Café, naïve résumé; Straße. Москва!",
      "東京は日本の首都です。😀👍",
      "I'm sure you'll see they've said it's what we'd do.",
      "def f(x):\n    return x ** 2  # square",
  };
  auto model = test::shared_data() / "tokenizers/llama2/tokenizer.model";
  std::unique_ptr<text::Tokenizer> spm;
  if (std::filesystem::exists(model)) spm = text::load_sentencepiece(model);
  for (const auto& s : sentences) {
    CAPTURE(s);
    auto ids = tok->encode(s, true);
    CHECK(tok->decode(ids) == s);
    if (spm) CHECK(ids == spm->encode(s, true));
  }
}

TEST_CASE("llama2c: long text merges quickly (no quadratic rescans)", "[text][llama2c]") {
  LAWCAT_SHARED_OR_SKIP(path, "corpora/tinystories/tinystories_val_head.txt");
  LAWCAT_SHARED_OR_SKIP(tok_file, "models/stories260K/tok512.bin");
  auto tok = text::load_llama2c(tok_file);
  const std::string text = fs::read_text(path).substr(0, 200000);
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok->encode(text);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 10.0);
  CHECK(ids.size() > 20000);
  CHECK(tok->decode(ids) == text);
}

TEST_CASE("llama2c: corrupt tokenizer.bin gives a DataError naming file and offset", "[text][llama2c]") {
  auto dir = test::scratch_dir("llama2c_corrupt");
  auto write = [&](const std::string& name, const std::string& bytes) {
    fs::atomic_write_text(dir / name, bytes);
    return dir / name;
  };
  auto expect_error = [&](const std::filesystem::path& p, const std::string& what) {
    CAPTURE(p.string(), what);
    try {
      text::load_llama2c(p);
      FAIL("loaded a corrupt file");
    } catch (const DataError& e) {
      CHECK(mentions(e, p.string()));
      CHECK(mentions(e, what));
    }
  };
  expect_error(write("empty.bin", ""), "offset 0");
  expect_error(dir / "absent.bin", "absent.bin");
  auto path = test::shared_data() / "models/stories260K/tok512.bin";
  if (std::filesystem::exists(path)) {
    const std::string good = fs::read_text(path);
    // Cut inside token 100's text / header.
    size_t off = 4;
    for (int i = 0; i < 100; ++i) {
      int32_t len;
      std::memcpy(&len, good.data() + off + 4, 4);
      off += 8 + len;
    }
    expect_error(write("cut_header.bin", good.substr(0, off + 5)), "offset " + std::to_string(off));
    expect_error(write("cut_text.bin", good.substr(0, off + 9)), "offset " + std::to_string(off + 8));
    std::string neg = good;
    int32_t bad = -5;
    std::memcpy(neg.data() + off + 4, &bad, 4);
    expect_error(write("negative.bin", neg), "offset " + std::to_string(off + 4));
  }
}
