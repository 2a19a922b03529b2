// dataset: corpus readers, Alpaca template, token cache, packing, splits, loader, BPE trainer.
#include <fstream>
#include <set>

#include "common/catch.h"
#include "dataset/bpe_trainer.h"
#include "dataset/corpus.h"
#include "dataset/packing.h"
#include "dataset/tokenized.h"
#include "text/tokenizer.h"
#include "util/error.h"

using namespace lawcat;
using namespace lawcat::dataset;
namespace stdfs = std::filesystem;

namespace {
void write_file(const stdfs::path& p, const std::string& s) {
  stdfs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
// Byte-level test tokenizer: byte b -> b + 3, BOS 1, EOS 2.
class ByteTokenizer : public text::Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& t, bool bos, bool eos) const override {
    std::vector<int64_t> out;
    if (bos) out.push_back(1);
    for (unsigned char c : t) out.push_back(c + 3);
    if (eos) out.push_back(2);
    return out;
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string s;
    for (auto i : ids)
      if (i >= 3) s.push_back(static_cast<char>(i - 3));
    return s;
  }
  std::string decode_piece(int64_t, int64_t id) const override { return decode({id}); }
  int64_t vocab_size() const override { return 259; }
  int64_t bos_id() const override { return 1; }
  int64_t eos_id() const override { return 2; }
  std::string kind() const override { return "bytes"; }
};
std::vector<int32_t> iota_stream(int n) {
  std::vector<int32_t> s(n);
  for (int i = 0; i < n; ++i) s[i] = i;
  return s;
}
}  // namespace

TEST_CASE("text documents split on blank lines or a separator line", "[dataset]") {
  auto docs = split_text_documents("one\nstill one\n\n  \ntwo\n\n\nthree");
  REQUIRE(docs.size() == 3);
  CHECK(docs[0] == "one\nstill one");
  CHECK(docs[1] == "two");
  CHECK(docs[2] == "three");
  auto f = split_text_documents("a\n\nb\n%\nc\n%\n", "%");
  REQUIRE(f.size() == 2);
  CHECK(f[0] == "a\n\nb");
  CHECK(f[1] == "c");
}

TEST_CASE("alpaca template with and without input", "[dataset]") {
  CHECK(render_alpaca("Add.", "1 and 2", "3") ==
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n"
        "### Input:\n1 and 2\n\n### Response:\n3");
  CHECK(render_alpaca("Say hi.", "", "hi") ==
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nSay hi.\n\n### Response:\nhi");
  auto dir = test::scratch_dir("alpaca");
  write_file(dir / "a.json",
             R"([{"instruction":"Say hi.","input":"","output":"hi"},{"instruction":"Add.","input":"1 and 2","output":"3"}])");
  auto docs = read_documents(dir / "a.json", {});
  REQUIRE(docs.size() == 2);
  CHECK(docs[0] == render_alpaca("Say hi.", "", "hi"));
  CHECK(docs[1] == render_alpaca("Add.", "1 and 2", "3"));
  write_file(dir / "bad.json", R"([{"instruction":"x","output":3}])");
  CHECK_THAT(error_of([&] { read_documents(dir / "bad.json", {}); }),
             LAWCAT_CONTAINS("record 0: field 'output' must be a string"));
}

TEST_CASE("jsonl documents and errors name file and line", "[dataset]") {
  auto dir = test::scratch_dir("jsonl");
  write_file(dir / "d.jsonl", "{\"text\": \"first\"}\n\n{\"text\": \"second\", \"id\": 2}\n");
  auto docs = read_documents(dir / "d.jsonl", {});
  REQUIRE(docs.size() == 2);
  CHECK(docs[1] == "second");
  write_file(dir / "e.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
  CHECK_THAT(error_of([&] { read_documents(dir / "e.jsonl", {}); }),
             LAWCAT_CONTAINS("e.jsonl:2: no field 'text'"));
  CorpusOptions o;
  o.text_field = "body";
  CHECK_THAT(error_of([&] { read_documents(dir / "e.jsonl", o); }), LAWCAT_CONTAINS("e.jsonl:1: no field 'body'"));
  write_file(dir / "f.jsonl", "{\"text\": \"ok\"}\n{not json\n");
  CHECK_THAT(error_of([&] { read_documents(dir / "f.jsonl", {}); }), LAWCAT_CONTAINS("f.jsonl:2: not valid JSON"));
}

TEST_CASE("bad corpora: non-UTF-8, missing files, empty folders", "[dataset]") {
  auto dir = test::scratch_dir("bad");
  write_file(dir / "latin1.txt", std::string("hello\ncaf\xe9 au lait\n"));
  std::string e = error_of([&] { read_documents(dir / "latin1.txt", {}); });
  CHECK_THAT(e, LAWCAT_CONTAINS("latin1.txt: not valid UTF-8 at byte offset 9 (line 2"));
  CHECK(find_invalid_utf8("caf\xc3\xa9") == std::string::npos);
  CHECK(find_invalid_utf8("\xc0\xaf") == 0);            // overlong
  CHECK(find_invalid_utf8("ab\xed\xa0\x80") == 2);      // surrogate
  CHECK(find_invalid_utf8("abc\xe2\x82") == 3);         // truncated
  CHECK_THAT(error_of([&] { expand_paths({(dir / "nope.txt").string()}); }),
             LAWCAT_CONTAINS("nope.txt: no such file or folder"));
  stdfs::create_directories(dir / "empty");
  write_file(dir / "empty" / "data.bin", "x");
  CHECK_THAT(error_of([&] { expand_paths({(dir / "empty").string()}); }), LAWCAT_CONTAINS("folder has no corpus files"));
  // Folders: recursive, sorted, by extension.
  write_file(dir / "f" / "b.txt", "b");
  write_file(dir / "f" / "sub" / "a.jsonl", "{\"text\":\"a\"}");
  write_file(dir / "f" / "skip.dat", "zz");
  auto files = expand_paths({(dir / "f").string()});
  REQUIRE(files.size() == 2);
  CHECK(files[0].filename() == "b.txt");
  CHECK(files[1].filename() == "a.jsonl");
}

TEST_CASE("tokenized cache: hit, invalidation on data / settings change", "[dataset]") {
  auto dir = test::scratch_dir("cache");
  write_file(dir / "a.txt", "ab\n\ncd\n");
  ByteTokenizer tok;
  TokenizeOptions o;
  o.cache_dir = dir / "cache";
  auto c1 = tokenize_corpus({(dir / "a.txt").string()}, tok, "key1", o);
  CHECK_FALSE(c1.from_cache);
  CHECK(c1.tokens == std::vector<int32_t>{1, 'a' + 3, 'b' + 3, 2, 1, 'c' + 3, 'd' + 3, 2});
  CHECK(c1.doc_offsets == std::vector<int64_t>{0, 4, 8});
  auto c2 = tokenize_corpus({(dir / "a.txt").string()}, tok, "key1", o);
  CHECK(c2.from_cache);
  CHECK(c2.tokens == c1.tokens);
  CHECK(c2.doc_offsets == c1.doc_offsets);
  // Another tokenizer, other settings, edited data: all miss.
  CHECK_FALSE(tokenize_corpus({(dir / "a.txt").string()}, tok, "key2", o).from_cache);
  TokenizeOptions no_eos = o;
  no_eos.add_eos = false;
  auto c3 = tokenize_corpus({(dir / "a.txt").string()}, tok, "key1", no_eos);
  CHECK_FALSE(c3.from_cache);
  CHECK(c3.num_tokens() == 6);
  write_file(dir / "a.txt", "ab\n\nce\n");
  auto c4 = tokenize_corpus({(dir / "a.txt").string()}, tok, "key1", o);
  CHECK_FALSE(c4.from_cache);
  CHECK(c4.tokens[6] == 'e' + 3);
  // A damaged cache file is rebuilt, not trusted.
  auto file = cache_file_for({(dir / "a.txt").string()}, "key1", o);
  REQUIRE(stdfs::exists(file));
  stdfs::resize_file(file, stdfs::file_size(file) - 3);
  auto c5 = tokenize_corpus({(dir / "a.txt").string()}, tok, "key1", o);
  CHECK_FALSE(c5.from_cache);
  CHECK(c5.tokens == c4.tokens);
}

TEST_CASE("empty corpora are errors naming the file", "[dataset]") {
  auto dir = test::scratch_dir("empty_corpus");
  write_file(dir / "empty.txt", "");
  write_file(dir / "blank.txt", "\n\n   \n\n");
  write_file(dir / "empty.jsonl", "");
  ByteTokenizer tok;
  TokenizeOptions o;
  o.cache_dir = dir / "cache";
  for (const char* f : {"empty.txt", "blank.txt", "empty.jsonl"}) {
    CAPTURE(f);
    std::string e = error_of([&] { tokenize_corpus({(dir / f).string()}, tok, "key", o); });
    CHECK_THAT(e, LAWCAT_CONTAINS(std::string("no documents in ") + (dir / f).string()));
  }
  // Nothing was cached for them.
  CHECK((!stdfs::exists(dir / "cache") || stdfs::is_empty(dir / "cache")));
}

TEST_CASE("packing cuts seq_len + 1 windows with stride seq_len", "[dataset]") {
  PackedDataset p(iota_stream(14), 4);
  REQUIRE(p.size() == 3);  // (14 - 1) / 4
  CHECK(at::equal(p.get(0), at::arange(0, 5, at::kLong)));
  CHECK(at::equal(p.get(2), at::arange(8, 13, at::kLong)));
  CHECK(p.batch({2, 0}).sizes() == at::IntArrayRef({2, 5}));
}

TEST_CASE("splits hold out whole documents, deterministically; too-short corpora are errors", "[dataset]") {
  TokenizedCorpus c;
  c.files = {"corpus.txt"};
  c.doc_offsets = {0};
  for (int d = 0; d < 20; ++d) {  // 20 documents of 10 tokens, token = d * 100 + k
    for (int k = 0; k < 10; ++k) c.tokens.push_back(d * 100 + k);
    c.doc_offsets.push_back(c.num_tokens());
  }
  auto s1 = make_splits(c, nullptr, 8, 0.2, 7);
  auto s2 = make_splits(c, nullptr, 8, 0.2, 7);
  auto s3 = make_splits(c, nullptr, 8, 0.2, 8);
  CHECK(s1.validation_docs == 4);
  CHECK(s1.train_docs == 16);
  CHECK(s1.validation.stream_tokens() == 40);
  std::set<int> train_docs, val_docs;
  for (int64_t i = 0; i < s1.train.size(); ++i)
    for (int64_t k = 0; k < 9; ++k) train_docs.insert(s1.train.get(i)[k].item<int>() / 100);
  for (int64_t i = 0; i < s1.validation.size(); ++i)
    for (int64_t k = 0; k < 9; ++k) val_docs.insert(s1.validation.get(i)[k].item<int>() / 100);
  for (int d : val_docs) CHECK(train_docs.count(d) == 0);
  CHECK(at::equal(s1.validation.get(0), s2.validation.get(0)));
  CHECK_FALSE(at::equal(s1.validation.get(0), s3.validation.get(0)));

  std::string e = error_of([&] { make_splits(c, nullptr, 128, 0.1, 0); });
  CHECK_THAT(e, LAWCAT_CONTAINS("corpus too short: corpus.txt give 200 tokens; need at least 258"));
  TokenizedCorpus tiny_val = c;
  tiny_val.files = {"val.txt"};
  tiny_val.tokens.resize(5);
  tiny_val.doc_offsets = {0, 5};
  CHECK_THAT(error_of([&] { make_splits(c, &tiny_val, 8, 0.1, 0); }),
             LAWCAT_CONTAINS("validation corpus too short: val.txt give 5 tokens; need at least 9"));
}

TEST_CASE("loader: seeded shuffle, every example once per epoch, resumable, rank slices", "[dataset]") {
  PackedDataset p(iota_stream(4 * 10 + 1), 4);  // 10 examples
  DataLoader a(p, 3, 42), b(p, 3, 42), c(p, 3, 43);
  std::vector<int64_t> firsts;
  bool differs = false;
  for (int i = 0; i < 7; ++i) {
    at::Tensor x = a.next(), y = b.next(), z = c.next();
    CHECK(at::equal(x, y));
    differs |= !at::equal(x, z);
    for (int64_t r = 0; r < 3; ++r) firsts.push_back(x[r][0].item<int64_t>() / 4);
  }
  CHECK(differs);
  std::set<int64_t> epoch0(firsts.begin(), firsts.begin() + 10);
  CHECK(epoch0.size() == 10);
  // Save the position, draw, restore into a fresh loader: same batches.
  auto pos = a.position();
  at::Tensor n1 = a.next(), n2 = a.next();
  DataLoader d(p, 3, 42);
  d.set_position(pos);
  CHECK(at::equal(d.next(), n1));
  CHECK(at::equal(d.next(), n2));
  // Two ranks with batch 2 each == one process with batch 4.
  DataLoader one(p, 4, 5), r0(p, 2, 5, 0, 2), r1(p, 2, 5, 1, 2);
  for (int i = 0; i < 4; ++i) CHECK(at::equal(one.next(), at::cat({r0.next(), r1.next()})));
  auto vb = validation_batches(p, 4, 3);
  REQUIRE(vb.size() == 3);
  CHECK(vb[2].size(0) == 2);
}

TEST_CASE("BPE trainer writes a llama2.c tokenizer that round-trips", "[dataset]") {
  auto dir = test::scratch_dir("bpe");
  std::vector<std::string> docs;
  for (int i = 0; i < 50; ++i)
    docs.push_back("the cat sat on the mat. the dog sat on the log, number " + std::to_string(i) + ".\nthe end");
  BpeTrainOptions o;
  o.vocab_size = 320;
  int64_t n = train_llama2c_tokenizer(docs, dir / "tokenizer.bin", o);
  CHECK(n > 280);
  CHECK(n <= 320);
  auto tok = text::load_tokenizer(dir);
  CHECK(tok->vocab_size() == n);
  CHECK(tok->bos_id() == 1);
  const std::string s = "the cat sat on the log. caf\xc3\xa9!";
  auto ids = tok->encode(s, true, false);
  CHECK(ids[0] == 1);
  CHECK(tok->decode(ids) == s);
  CHECK(ids.size() < s.size() * 2 / 3);  // merges compress the familiar words
}
