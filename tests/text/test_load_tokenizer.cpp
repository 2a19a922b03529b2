// text/tokenizer: load_tokenizer picks the file of a model directory and applies
// tokenizer_config.json; text/unicode helpers.
#include "common/catch.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "util/error.h"
#include "util/fs.h"

using namespace lawcat;

namespace {
std::filesystem::path fixtures() {
  return std::filesystem::path(LAWCAT_SOURCE_DIR) / "tests" / "data" / "tokenizers";
}
void link(const std::filesystem::path& target, const std::filesystem::path& link) {
  std::filesystem::create_symlink(std::filesystem::absolute(target), link);
}
bool mentions(const std::exception& e, const std::string& what) {
  return std::string(e.what()).find(what) != std::string::npos;
}
}  // namespace

TEST_CASE("load_tokenizer: an empty directory names what it looked for", "[text]") {
  auto dir = test::scratch_dir("load_empty");
  try {
    text::load_tokenizer(dir);
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK(mentions(e, dir.string()));
    CHECK(mentions(e, "tokenizer.json"));
    CHECK(mentions(e, "tokenizer.model"));
    CHECK(mentions(e, "tokenizer.bin"));
  }
  CHECK_THROWS_AS(text::load_tokenizer(dir / "absent"), DataError);
}

TEST_CASE("load_tokenizer: tokenizer.json first, with tokenizer_config.json special tokens", "[text]") {
#ifndef LAWCAT_HAVE_PCRE2
  LAWCAT_SKIP("built without PCRE2 (libpcre2-dev): tokenizer.json support is off");
#endif
  auto dir = test::scratch_dir("load_json");
  link(fixtures() / "bpe_llama3/tokenizer.json", dir / "tokenizer.json");
  auto tok = text::load_tokenizer(dir);
  CHECK(tok->kind() == "bpe");
  CHECK(tok->bos_id() == 901);
  CHECK(tok->eos_id() == 902);
  // An instruct model: EOS is <|eot_id|>; the AddedToken object form.
  fs::atomic_write_text(dir / "tokenizer_config.json",
                        R"({"bos_token": "<|begin_of_text|>",
                            "eos_token": {"content": "<|eot_id|>", "special": true},
                            "add_bos_token": true})");
  tok = text::load_tokenizer(dir);
  CHECK(tok->bos_id() == 901);
  CHECK(tok->eos_id() == 903);
  CHECK(tok->encode("a", true, true).back() == 903);
  // A byte-level tokenizer.json wins over tokenizer.model / tokenizer.bin beside it.
  auto spm = test::shared_data() / "tokenizers/llama2/tokenizer.model";
  if (std::filesystem::exists(spm)) {
    link(spm, dir / "tokenizer.model");
    CHECK(text::load_tokenizer(dir)->kind() == "bpe");
  }
}

TEST_CASE("load_tokenizer: null bos_token in the config means no BOS (Qwen2)", "[text]") {
#ifndef LAWCAT_HAVE_PCRE2
  LAWCAT_SKIP("built without PCRE2 (libpcre2-dev): tokenizer.json support is off");
#endif
  auto dir = test::scratch_dir("load_null_bos");
  link(fixtures() / "bpe_gpt2/tokenizer.json", dir / "tokenizer.json");
  fs::atomic_write_text(dir / "tokenizer_config.json", R"({"bos_token": null, "eos_token": "<|endoftext|>"})");
  auto tok = text::load_tokenizer(dir);
  CHECK(tok->bos_id() == -1);
  CHECK(!tok->add_bos_by_default());
  CHECK(tok->encode("hi", true) == tok->encode("hi"));
  CHECK(tok->eos_id() == tok->piece_to_id("<|endoftext|>"));
}

TEST_CASE("load_tokenizer: tokenizer.model, then tokenizer.bin", "[text][spm]") {
  LAWCAT_SHARED_OR_SKIP(model, "tokenizers/llama2/tokenizer.model");
  auto dir = test::scratch_dir("load_model");
  link(test::shared_data() / "tokenizers/llama2/tokenizer.bin", dir / "tokenizer.bin");
  CHECK(text::load_tokenizer(dir)->kind() == "llama2c");
  link(model, dir / "tokenizer.model");
  auto tok = text::load_tokenizer(dir);
  CHECK(tok->kind() == "sentencepiece");
  CHECK(tok->encode("Once upon a time,", true) == std::vector<int64_t>{1, 9038, 2501, 263, 931, 29892});
  // A SentencePiece-style tokenizer.json beside tokenizer.model: the .model is the original.
  link(fixtures() / "bpe_spm/tokenizer.json", dir / "tokenizer.json");
  CHECK(text::load_tokenizer(dir)->kind() == "sentencepiece");
}

TEST_CASE("load_tokenizer: corrupt file errors name the file", "[text]") {
  auto dir = test::scratch_dir("load_corrupt");
  fs::atomic_write_text(dir / "tokenizer.bin", "xy");
  try {
    text::load_tokenizer(dir);
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK(mentions(e, (dir / "tokenizer.bin").string()));
  }
  fs::atomic_write_text(dir / "tokenizer.json", "[");
  try {
    text::load_tokenizer(dir);
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK(mentions(e, (dir / "tokenizer.json").string()));
  }
}

TEST_CASE("unicode: byte-level map and lossy UTF-8 repair", "[text]") {
  using namespace text::unicode;
  CHECK(byte_to_unicode()[' '] == 0x120);   // Ġ
  CHECK(byte_to_unicode()['\n'] == 0x10A);  // Ċ
  CHECK(byte_to_unicode()['A'] == 'A');
  for (int b = 0; b < 256; ++b) CHECK(unicode_to_byte(byte_to_unicode()[b]) == b);
  CHECK(bytes_to_byte_level(" hi\n") == "\xC4\xA0hi\xC4\x8A");
  CHECK(to_valid_utf8("abc é 日 😀") == "abc é 日 😀");
  CHECK(to_valid_utf8("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
  CHECK(to_valid_utf8("\xE6\x97") == "\xEF\xBF\xBD");             // truncated: one U+FFFD
  CHECK(to_valid_utf8("\xF0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // bad second byte: two
  CHECK(to_valid_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(is_valid_utf8("日本"));
  CHECK(!is_valid_utf8("\xC3"));
}
