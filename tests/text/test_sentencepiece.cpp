// text/sentencepiece: the Llama 2 tokenizer.model through the dlmopen'ed shim, inside a
// process that has LibTorch (and its protobuf) loaded.
#include <ATen/ATen.h>

#include <cstdlib>
#include <random>
#include <thread>

#include "common/catch.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;

namespace {
std::vector<int64_t> v(std::initializer_list<int64_t> l) { return l; }
bool mentions(const std::exception& e, const std::string& what) {
  return std::string(e.what()).find(what) != std::string::npos;
}
}  // namespace

TEST_CASE("sentencepiece: Llama 2 tokenizer.model encodes the documented ids", "[text][spm]") {
  LAWCAT_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
  // LibTorch is loaded and used before and after: the shim must not disturb it.
  auto a = at::arange(6, at::kFloat).reshape({2, 3});
  auto tok = text::load_sentencepiece(model);
  CHECK(tok->kind() == "sentencepiece");
  CHECK(tok->vocab_size() == 32000);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  CHECK(tok->encode("Once upon a time,") == v({9038, 2501, 263, 931, 29892}));
  CHECK(tok->encode("Once upon a time,", true) == v({1, 9038, 2501, 263, 931, 29892}));
  CHECK(tok->encode("Once upon a time,", true, true) == v({1, 9038, 2501, 263, 931, 29892, 2}));
  CHECK(tok->decode({1, 9038, 2501, 263, 931, 29892, 2}) == "Once upon a time,");
  CHECK(tok->encode("").empty());
  CHECK(tok->id_to_piece(9038) == "\xE2\x96\x81Once");
  CHECK(tok->piece_to_id("\xE2\x96\x81Once") == 9038);
  CHECK(tok->piece_to_id("no such piece, surely") == -1);
  CHECK(tok->is_special(1));
  CHECK(!tok->is_special(9038));
  CHECK(a.sum().item<float>() == 15.0f);
  CHECK(at::matmul(a, a.t()).sum().item<float>() == 83.0f);  // [[5, 14], [14, 50]]
}

TEST_CASE("sentencepiece: round trips and streaming pieces", "[text][spm]") {
  LAWCAT_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
  auto tok = text::load_sentencepiece(model);
  const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "Café naïve résumé, Straße, Москва, 東京は日本の首都です。 😀👍🏽",
      "Numbers 12345 and 3.14159; tabs\tand\nnewlines.",
      "a",
  };
  for (const auto& s : texts) {
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
  // Byte fallback: the emoji has no piece, it is spelled in <0xNN> pieces.
  auto ids = tok->encode("😀");
  bool has_byte = false;
  for (auto id : ids) has_byte |= tok->id_to_piece(id).rfind("<0x", 0) == 0;
  CHECK(has_byte);
  CHECK_THROWS_AS(tok->decode({5, 40000}), DataError);
}

TEST_CASE("sentencepiece: concurrent encoding from several threads", "[text][spm]") {
  LAWCAT_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
  auto tok = text::load_sentencepiece(model);
  const std::string s = "Once upon a time, there was a little girl named Lily. She loved to play.";
  const auto want = tok->encode(s);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int good = 0;
      for (int i = 0; i < 200; ++i) good += tok->encode(s) == want;
      ok[t] = good;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) CHECK(ok[t] == 200);
  // Two models loaded at once share the one shim.
  auto tok2 = text::load_sentencepiece(model);
  CHECK(tok2->encode(s) == want);
}

TEST_CASE("sentencepiece: corrupt or missing tokenizer.model gives a DataError naming it", "[text][spm]") {
  auto dir = test::scratch_dir("spm_corrupt");
  const auto bad = dir / "tokenizer.model";
  std::mt19937 rng(42);
  std::string junk(4096, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  fs::atomic_write_text(bad, junk);
  try {
    text::load_sentencepiece(bad);
    FAIL("random bytes loaded as a SentencePiece model");
  } catch (const DataError& e) {
    CHECK(mentions(e, bad.string()));
  }
  try {
    text::load_sentencepiece(dir / "missing.model");
    FAIL("missing file loaded");
  } catch (const DataError& e) {
    CHECK(mentions(e, "missing.model"));
  }
  // A real model cut short.
  auto real = test::shared_data() / "tokenizers/llama2/tokenizer.model";
  if (std::filesystem::exists(real)) {
    const auto cut = dir / "cut.model";
    fs::atomic_write_text(cut, fs::read_text(real).substr(0, 100000));
    try {
      text::load_sentencepiece(cut);
      FAIL("truncated model loaded");
    } catch (const DataError& e) {
      CHECK(mentions(e, cut.string()));
    }
  }
  // The process is still healthy.
  CHECK(at::ones({3}).sum().item<float>() == 3.0f);
}

// Run in a child process by the next test: the shim path comes from $LAWCAT_SPM_SHIM.
TEST_CASE("sentencepiece child: unloadable shim", "[.][spm_shim_child]") {
  LAWCAT_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
  try {
    text::load_sentencepiece(model);
    FAIL("loaded with a bogus shim path");
  } catch (const DataError& e) {
    INFO(e.what());
    CHECK(mentions(e, model.string()));
    CHECK(mentions(e, "/nonexistent/liblawcat_spm_shim.so"));
    CHECK(mentions(e, "LAWCAT_SPM_SHIM"));
  }
}

TEST_CASE("sentencepiece: a missing shim gives a DataError naming the shim and the model", "[text][spm]") {
  LAWCAT_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  REQUIRE(!ec);
  // A child that runs no test case must fail instead of passing vacuously: Catch2 v2 needs
  // --warn NoTests for that; v3 does it by default (exit code 2) and rejects that option.
#ifdef LAWCAT_CATCH3
  const char* no_tests_fail = "";
#else
  const char* no_tests_fail = " --warn NoTests";
#endif
  const std::string cmd = "LAWCAT_SPM_SHIM=/nonexistent/liblawcat_spm_shim.so '" + exe.string() + "'" +
                          no_tests_fail + " '[spm_shim_child]' > /dev/null 2>&1";
  CHECK(std::system(cmd.c_str()) == 0);
}
