// text/bpe: tokenizer.json BPE against Hugging Face `tokenizers` (the oracle): the
// fixtures in tests/data/tokenizers/ and the ids tokenizers gave for each test string
// (bpe_expected.json, made by tests/data/tokenizers/make_bpe_fixture.py).
#include <chrono>
#include <random>

#include "common/catch.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "util/error.h"
#include "util/fs.h"

// tokenizer.json support needs PCRE2 (optional in the build, e.g. absent on the GPU machine).
#ifdef LAWCAT_HAVE_PCRE2

using namespace lawcat;
using json = nlohmann::json;

namespace {

std::filesystem::path fixtures() {
  return std::filesystem::path(LAWCAT_SOURCE_DIR) / "tests" / "data" / "tokenizers";
}
const json& expected() {
  static const json j = json::parse(fs::read_text(fixtures() / "bpe_expected.json"));
  return j;
}
std::string show(const std::vector<int64_t>& ids) { return json(ids).dump(); }
bool mentions(const std::exception& e, const std::string& what) {
  return std::string(e.what()).find(what) != std::string::npos;
}

// Our encode/decode of every expected string equals tokenizers'.
void check_fixture(const text::Tokenizer& tok, const std::string& name) {
  const auto& fx = expected()["fixtures"][name];
  const auto& strings = expected()["strings"];
  CHECK(tok.vocab_size() == fx["vocab_size"].get<int64_t>());
  const auto prefix = fx["special_prefix"].get<std::vector<int64_t>>();
  int mismatches = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const auto s = strings[i].get<std::string>();
    const auto want = fx["ids"][i].get<std::vector<int64_t>>();
    const auto got = tok.encode(s);
    if (got != want && ++mismatches <= 5) {
      FAIL_CHECK(name << " encode(" << json(s).dump() << ")\n  got  " << show(got) << "\n  want " << show(want));
    }
    if (!prefix.empty()) {
      auto with = prefix;
      with.insert(with.end(), want.begin(), want.end());
      CHECK(tok.encode(s, true) == with);
    }
    const auto& d = fx["decoded"][i];
    const std::string want_text = d.is_null() ? s : d.get<std::string>();
    const std::string got_text = tok.decode(want);
    if (got_text != want_text) {
      FAIL_CHECK(name << " decode(" << show(want) << ")\n  got  " << json(got_text).dump()
                      << "\n  want " << json(want_text).dump());
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("bpe: Llama 3 style byte-level tokenizer.json matches HF tokenizers", "[text][bpe]") {
  auto tok = text::load_bpe_json(fixtures() / "bpe_llama3/tokenizer.json");
  CHECK(tok->kind() == "bpe");
  CHECK(tok->bos_id() == tok->piece_to_id("<|begin_of_text|>"));
  CHECK(tok->bos_id() == 901);
  CHECK(tok->eos_id() == tok->piece_to_id("<|end_of_text|>"));
  CHECK(tok->add_bos_by_default());
  check_fixture(*tok, "bpe_llama3");
}

TEST_CASE("bpe: GPT-2 / SmolLM style (Digits + ByteLevel regex, prefix space) matches HF", "[text][bpe]") {
  auto tok = text::load_bpe_json(fixtures() / "bpe_gpt2/tokenizer.json");
  CHECK(tok->bos_id() == -1);
  CHECK(!tok->add_bos_by_default());
  CHECK(tok->eos_id() == tok->piece_to_id("<|endoftext|>"));
  check_fixture(*tok, "bpe_gpt2");
}

TEST_CASE("bpe: SentencePiece-style tokenizer.json (Metaspace, byte fallback) matches HF", "[text][bpe]") {
  auto tok = text::load_bpe_json(fixtures() / "bpe_spm/tokenizer.json");
  CHECK(tok->bos_id() == tok->piece_to_id("<s>"));
  CHECK(tok->eos_id() == tok->piece_to_id("</s>"));
  check_fixture(*tok, "bpe_spm");
  auto legacy = text::load_bpe_json(fixtures() / "bpe_spm_legacy/tokenizer.json");
  check_fixture(*legacy, "bpe_spm_legacy");
}

TEST_CASE("bpe: merges written as \"a b\" strings load the same", "[text][bpe]") {
  json j = json::parse(fs::read_text(fixtures() / "bpe_llama3/tokenizer.json"));
  auto& merges = j["model"]["merges"];
  REQUIRE(merges.size() > 100);
  REQUIRE(merges[0].is_array());
  for (auto& m : merges) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  auto dir = test::scratch_dir("bpe_string_merges");
  fs::atomic_write_text(dir / "tokenizer.json", j.dump());
  auto tok = text::load_bpe_json(dir / "tokenizer.json");
  check_fixture(*tok, "bpe_llama3");
}

TEST_CASE("bpe: special tokens in text map to their ids; decode drops them", "[text][bpe]") {
  auto tok = text::load_bpe_json(fixtures() / "bpe_llama3/tokenizer.json");
  const int64_t bos = tok->piece_to_id("<|begin_of_text|>"), eot = tok->piece_to_id("<|eot_id|>");
  REQUIRE(eot == 903);
  auto ids = tok->encode("hi<|eot_id|><|begin_of_text|>", true, true);
  REQUIRE(ids.size() >= 5);
  CHECK(ids[0] == bos);
  CHECK(ids[ids.size() - 3] == eot);
  CHECK(ids[ids.size() - 2] == bos);
  CHECK(ids.back() == tok->eos_id());
  CHECK(tok->decode(ids) == "hi");
  CHECK(tok->is_special(eot));
  CHECK(!tok->is_special(tok->piece_to_id("<tool>")));  // a non-special added token
  CHECK(tok->decode(tok->encode("a<tool>b")) == "a<tool>b");
  // ignore_merges: a word that is a vocab entry is taken whole even without a merge path.
  CHECK(tok->encode(" unicorn") == std::vector<int64_t>{tok->piece_to_id("\xC4\xA0unicorn")});
  // A prefix of a special token is ordinary text.
  CHECK(tok->decode(tok->encode("<|eot_id")) == "<|eot_id");
}

TEST_CASE("bpe: decode(encode(s)) == s for random Unicode and whitespace runs", "[text][bpe]") {
  auto tok = text::load_bpe_json(fixtures() / "bpe_llama3/tokenizer.json");
  const std::vector<std::string> pool = {
      "a", "b", "the", " ", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", ".", ",", "'s", "'LL", "0", "12",
      "345", "é", "ü", "ß", "Ω", "日", "本", "語", "한", "я", "😀", "👍🏽", "👨‍👩‍👧", "\u00a0", "\u3000",
      "\u0301", "\u200d", "\u2028", "\u0085", "<", "|", ">", "<|", "|>", "\\", "\"", "$", "%"};
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> len(0, 60), pick(0, static_cast<int>(pool.size()) - 1);
  for (int i = 0; i < 500; ++i) {
    std::string s;
    for (int k = len(rng); k > 0; --k) s += pool[pick(rng)];
    CAPTURE(s);
    auto ids = tok->encode(s);
    REQUIRE(tok->decode(ids) == s);
    std::string streamed;
    int64_t prev = -1;
    for (auto id : ids) {
      streamed += tok->decode_piece(prev, id);
      prev = id;
    }
    REQUIRE(streamed == s);
  }
}

TEST_CASE("bpe: arbitrary bytes survive byte-level encoding", "[text][bpe]") {
  auto tok = text::load_bpe_json(fixtures() / "bpe_llama3/tokenizer.json");
  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes += static_cast<char>(b);
  bytes += "\xC3(\xE2\x82 \xF0\x9F\x98";  // broken sequences
  auto ids = tok->encode(bytes);
  std::string streamed;
  for (auto id : ids) streamed += tok->decode_piece(0, id);
  CHECK(streamed == bytes);  // pieces are raw bytes
  const std::string text = tok->decode(ids);  // decode repairs to valid UTF-8 (U+FFFD), as HF does
  CHECK(text.find("\xEF\xBF\xBD") != std::string::npos);
}

TEST_CASE("bpe: long inputs encode in near-linear time", "[text][bpe]") {
  auto tok = text::load_bpe_json(fixtures() / "bpe_llama3/tokenizer.json");
  // One 60k-character word (the regex keeps a run of letters together) and 300 kB of prose.
  std::string word;
  for (int i = 0; i < 20000; ++i) word += "日本語";
  std::string prose;
  while (prose.size() < 300000) prose += "Once upon a time, there was a little girl named Lily. ";
  auto t0 = std::chrono::steady_clock::now();
  auto a = tok->encode(word);
  auto b = tok->encode(prose);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 10.0);
  CHECK(tok->decode(a) == word);
  CHECK(tok->decode(b) == prose);
}

TEST_CASE("bpe: an NFC normalizer (Qwen2) loads; NFC text encodes as without it", "[text][bpe]") {
  json j = json::parse(fs::read_text(fixtures() / "bpe_llama3/tokenizer.json"));
  j["normalizer"] = {{"type", "NFC"}};
  auto dir = test::scratch_dir("bpe_nfc");
  fs::atomic_write_text(dir / "tokenizer.json", j.dump());
  auto nfc = text::load_bpe_json(dir / "tokenizer.json");
  auto plain = text::load_bpe_json(fixtures() / "bpe_llama3/tokenizer.json");
  for (std::string s : {"Hello world", "Café naïve", "東京 😀"}) CHECK(nfc->encode(s) == plain->encode(s));
  // Decomposed accents (NFD) encode as the composed text when lawcat has ICU; without it the
  // normalizer is skipped (with a warning) and they keep their own bytes.
  const std::string nfd = "Cafe\u0301 nai\u0308ve", composed = "Caf\u00e9 na\u00efve";
  if (text::unicode::nfc_available()) CHECK(nfc->encode(nfd) == plain->encode(composed));
  else CHECK(nfc->encode(nfd) == plain->encode(nfd));
  CHECK(plain->encode(nfd) != plain->encode(composed));
}

TEST_CASE("bpe: broken tokenizer.json files give DataErrors naming the file", "[text][bpe]") {
  auto dir = test::scratch_dir("bpe_errors");
  const json good = json::parse(fs::read_text(fixtures() / "bpe_llama3/tokenizer.json"));
  auto expect_error = [&](const std::string& name, const std::string& content, const std::string& what) {
    CAPTURE(name, what);
    const auto p = dir / name;
    fs::atomic_write_text(p, content);
    try {
      text::load_bpe_json(p);
      FAIL("loaded a broken tokenizer.json");
    } catch (const DataError& e) {
      CHECK(mentions(e, p.string()));
      CHECK(mentions(e, what));
    }
  };
  expect_error("not_json.json", "{\"model\": [1, 2", "not valid JSON");
  expect_error("no_model.json", "{}", "model");
  json j = good;
  j["model"]["type"] = "WordPiece";
  expect_error("wordpiece.json", j.dump(), "WordPiece");
  j = good;
  j["model"]["merges"][3] = json::array({"zzz-not-a-token", "q"});
  expect_error("bad_merge.json", j.dump(), "merges[3]");
  j = good;
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_error("bad_regex.json", j.dump(), "pretokenizers[0]");
  j = good;
  j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  expect_error("bert.json", j.dump(), "BertPreTokenizer");
  // The template's BOS (id 901) is an added token; without added_tokens it lies past the
  // 901-token vocabulary, and encode emitted it (found by fuzz_tokenizer_json).
  j = good;
  j.erase("added_tokens");
  expect_error("template_bos_outside_vocab.json", j.dump(), "id 901 is not in the vocabulary");
  // One token with id 2^31 - 1 sized the id table by it (16 GiB; found by fuzz_tokenizer_json).
  j = good;
  j["model"]["vocab"]["zzz-far-away"] = 2147483647;
  expect_error("huge_id.json", j.dump(), "token ids run up to 2147483647");
  j = good;
  j["added_tokens"][0]["id"] = 2000000000;
  expect_error("huge_added_id.json", j.dump(), "token ids run up to 2000000000");
  // A float where an integer belongs: nlohmann's get<int>() of 9e242 is undefined behaviour
  // (UBSan, found by fuzz_tokenizer_json); refused with the key named.
  j = good;
  j["added_tokens"][0]["id"] = 9.06667e242;
  expect_error("float_added_id.json", j.dump(), "added_tokens: id: expected an integer");
  j = good;
  j["added_tokens"][0]["id"] = -3;
  expect_error("negative_added_id.json", j.dump(), "added_tokens: id: expected an integer");
  j = good;
  j["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"][0] = 1.5e300;
  expect_error("float_special_id.json", j.dump(), "expected an integer");
  try {
    text::load_bpe_json(dir / "absent.json");
    FAIL("loaded a missing file");
  } catch (const DataError& e) {
    CHECK(mentions(e, "absent.json"));
  }
  auto tok = text::load_bpe_json(fixtures() / "bpe_llama3/tokenizer.json");
  CHECK_THROWS_AS(tok->decode({1, 100000}), DataError);
}

#else
TEST_CASE("bpe: tokenizer.json tests", "[text][bpe]") {
  LAWCAT_SKIP("built without PCRE2 (libpcre2-dev): tokenizer.json support and its tests are off");
}
#endif
