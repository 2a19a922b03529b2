// dataset: compressed corpora (.xz .gz .zst) read exactly like the plain files;
// corrupt, truncated and malformed ones are DataErrors naming the file and line.
// Fixtures are made here with the command-line tools (xz, gzip, zstd), an encoder
// independent of the decoder under test; a case skips when its tool is missing.
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "common/catch.h"
#include "dataset/corpus.h"
#include "dataset/decompress.h"
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
std::string read_file(const stdfs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a DataError: ") + e.what();
  }
  return "";
}
bool have_tool(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}
const char* tool_of(Compression c) {
  return c == Compression::kXz ? "xz" : c == Compression::kGzip ? "gzip" : "zstd";
}
const char* suffix_of(Compression c) {
  return c == Compression::kXz ? ".xz" : c == Compression::kGzip ? ".gz" : ".zst";
}
// `tool -c plain >(>) plain<suffix>` (append when `append`); returns the compressed path.
stdfs::path compress(Compression c, const stdfs::path& plain, const stdfs::path& to, bool append = false) {
  stdfs::create_directories(to.parent_path());
  const std::string cmd = std::string(tool_of(c)) + " -q -c '" + plain.string() + "' " + (append ? ">>" : ">") +
                          " '" + to.string() + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return to;
}
stdfs::path compress(Compression c, const stdfs::path& plain) {
  return compress(c, plain, plain.string() + suffix_of(c));
}

// Documents with multi-byte UTF-8, quotes, newlines; ~`n` of them, seeded.
std::vector<std::string> sample_texts(int n, uint32_t seed) {
  static const char* kWords[] = {"the", "cat", "sat", "on", "a", "mat", "café", "naïve", "中文", "\"quoted\"",
                                 "tab\there", "line\nbreak", "ümlaut", "emoji 🐈", "end."};
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string t = "doc " + std::to_string(i) + ":";
    const int words = 20 + static_cast<int>(rng() % 400);
    for (int w = 0; w < words; ++w) t += std::string(" ") + kWords[rng() % std::size(kWords)];
    out.push_back(t);
  }
  return out;
}
std::string jsonl_of(const std::vector<std::string>& texts) {
  std::string s;
  for (size_t i = 0; i < texts.size(); ++i) s += nlohmann::json{{"id", i}, {"text", texts[i]}}.dump() + "\n";
  return s;
}
// Skips the rest of a section when this build or this machine lacks `c`; checks the error then.
#define COMPRESSION_OR_SKIP(c, dir)                                                                         \
  if (!compression_built_in(c)) {                                                                          \
    write_file((dir) / (std::string("x.txt") + suffix_of(c)), "not really compressed");                    \
    CHECK_THAT(error_of([&] { read_documents((dir) / (std::string("x.txt") + suffix_of(c)), {}); }),        \
               LAWCAT_CONTAINS(std::string("built without ") + compression_name(c) + " support"));        \
    LAWCAT_SKIP(compression_name(c) << " support not built in");                                           \
  }                                                                                                         \
  if (!have_tool(tool_of(c))) LAWCAT_SKIP(tool_of(c) << " not installed: cannot make the fixture")
}  // namespace

TEST_CASE("compression suffixes: format, stripping, folders", "[dataset][compressed]") {
  CHECK(compression_of("a/x.jsonl.xz") == Compression::kXz);
  CHECK(compression_of("x.txt.GZ") == Compression::kGzip);
  CHECK(compression_of("x.json.zst") == Compression::kZstd);
  CHECK(compression_of("x.jsonl") == Compression::kNone);
  CHECK(strip_compression_suffix("a/x.jsonl.xz") == stdfs::path("a/x.jsonl"));
  CHECK(strip_compression_suffix("a/x.jsonl") == stdfs::path("a/x.jsonl"));
  CHECK(resolve_format("x.jsonl.xz", "auto") == "jsonl");
  CHECK(resolve_format("x.txt.gz", "auto") == "text");
  CHECK(resolve_format("x.json.zst", "auto") == "alpaca");
  CHECK(resolve_format("x.gz", "auto") == "text");
  CHECK(resolve_format("x.json.zst", "jsonl") == "jsonl");
  CHECK(sniff_compression(std::string("\xFD" "7zXZ\0\0", 7)) == Compression::kXz);
  CHECK(sniff_compression("\x1F\x8B\x08") == Compression::kGzip);
  CHECK(sniff_compression("\x28\xB5\x2F\xFD") == Compression::kZstd);
  CHECK(sniff_compression("{\"text\"") == Compression::kNone);

  auto dir = test::scratch_dir("compressed_folder");
  for (const char* f : {"a.jsonl.xz", "b.txt.gz", "c.json.zst", "d.md", "skip.tar.gz", "skip.xz", "skip.bin.zst"})
    write_file(dir / "f" / f, "x");
  write_file(dir / "f" / "sub" / "e.text.xz", "x");
  auto files = expand_paths({(dir / "f").string()});
  REQUIRE(files.size() == 5);
  CHECK(files[0].filename() == "a.jsonl.xz");
  CHECK(files[1].filename() == "b.txt.gz");
  CHECK(files[2].filename() == "c.json.zst");
  CHECK(files[3].filename() == "d.md");
  CHECK(files[4].filename() == "e.text.xz");
}

TEST_CASE("compressed JSONL, text and Alpaca files give the plain file's documents", "[dataset][compressed]") {
  const auto c = GENERATE(Compression::kXz, Compression::kGzip, Compression::kZstd);
  CAPTURE(compression_name(c));
  auto dir = test::scratch_dir(std::string("compressed_same_") + compression_name(c));
  COMPRESSION_OR_SKIP(c, dir);
  // ~500 KB of JSONL: many 64 KiB input and output chunks.
  const auto texts = sample_texts(600, 7);
  write_file(dir / "d.jsonl", jsonl_of(texts));
  const auto plain = read_documents(dir / "d.jsonl", {});
  REQUIRE(plain.size() == texts.size());
  CHECK(plain == texts);
  CHECK(read_documents(compress(c, dir / "d.jsonl"), {}) == plain);

  std::string text;
  for (const auto& t : texts) text += t + "\n\n\n";
  write_file(dir / "t.txt", text);
  const auto plain_text = read_documents(dir / "t.txt", {});
  CHECK(plain_text.size() == texts.size());  // blank lines split; the single newlines inside do not
  CHECK(read_documents(compress(c, dir / "t.txt"), {}) == plain_text);

  write_file(dir / "a.json", R"([{"instruction":"Say hi.","input":"","output":"hi"},)"
                             R"({"instruction":"Add.","input":"1 and 2","output":"3"}])");
  const auto alpaca = read_documents(dir / "a.json", {});
  REQUIRE(alpaca.size() == 2);
  CHECK(read_documents(compress(c, dir / "a.json"), {}) == alpaca);

  // Concatenated: xz streams / gzip members / zstd frames back to back are one file.
  write_file(dir / "p1.jsonl", jsonl_of({texts[0], texts[1]}));
  write_file(dir / "p2.jsonl", jsonl_of({texts[2]}));
  const auto multi = dir / (std::string("multi.jsonl") + suffix_of(c));
  compress(c, dir / "p1.jsonl", multi);
  compress(c, dir / "p2.jsonl", multi, /*append=*/true);
  CHECK(read_documents(multi, {}) == std::vector<std::string>{texts[0], texts[1], texts[2]});

  // An empty compressed file is not a valid stream.
  write_file(dir / (std::string("empty.jsonl") + suffix_of(c)), "");
  CHECK_THAT(error_of([&] { read_documents(dir / (std::string("empty.jsonl") + suffix_of(c)), {}); }),
             LAWCAT_CONTAINS(std::string("empty.jsonl") + suffix_of(c) + ": empty file, not "));
  // Plain text under a compressed name.
  write_file(dir / (std::string("plain.txt") + suffix_of(c)), "just text, not compressed\n");
  CHECK_THAT(error_of([&] { read_documents(dir / (std::string("plain.txt") + suffix_of(c)), {}); }),
             LAWCAT_CONTAINS(std::string("plain.txt") + suffix_of(c) + ": corrupt " + compression_name(c) +
                             " stream"));
}

TEST_CASE("multi-stream xz with padding between streams", "[dataset][compressed]") {
  auto dir = test::scratch_dir("compressed_multistream");
  COMPRESSION_OR_SKIP(Compression::kXz, dir);
  const auto texts = sample_texts(30, 11);
  std::string streams;
  for (int part = 0; part < 3; ++part) {
    const auto p = dir / ("part" + std::to_string(part) + ".jsonl");
    write_file(p, jsonl_of({texts.begin() + part * 10, texts.begin() + part * 10 + 10}));
    streams += read_file(compress(Compression::kXz, p));
    streams += std::string(4 * part, '\0');  // xz stream padding (a multiple of 4 zero bytes) is allowed
  }
  write_file(dir / "all.jsonl.xz", streams);
  CHECK(read_documents(dir / "all.jsonl.xz", {}) == texts);
}

TEST_CASE("corrupt and truncated compressed files name the file and where decoding stopped",
          "[dataset][compressed]") {
  const auto c = GENERATE(Compression::kXz, Compression::kGzip, Compression::kZstd);
  CAPTURE(compression_name(c));
  auto dir = test::scratch_dir(std::string("compressed_bad_") + compression_name(c));
  COMPRESSION_OR_SKIP(c, dir);
  write_file(dir / "d.jsonl", jsonl_of(sample_texts(400, 3)));
  const std::string good = read_file(compress(c, dir / "d.jsonl"));
  REQUIRE(good.size() > 1000);
  const std::string name = std::string("d.jsonl") + suffix_of(c);

  // Cut in half: the decoder runs out of input.
  write_file(dir / "cut" / name, good.substr(0, good.size() / 2));
  std::string e = error_of([&] { read_documents(dir / "cut" / name, {}); });
  CHECK_THAT(e, LAWCAT_CONTAINS((dir / "cut" / name).string() + ": truncated " + compression_name(c) + " stream"));
  CHECK_THAT(e, LAWCAT_CONTAINS("at decompressed byte offset"));
  CHECK_THAT(e, LAWCAT_CONTAINS("(line "));
  // The last byte missing (xz: the stream footer; gzip: the size trailer; zstd: the checksum).
  write_file(dir / "cut1" / name, good.substr(0, good.size() - 1));
  CHECK_THAT(error_of([&] { read_documents(dir / "cut1" / name, {}); }),
             LAWCAT_CONTAINS(name + ": truncated " + compression_name(c) + " stream"));

  // Bytes flipped in the middle: caught by the format's checks (xz CRC64, gzip
  // CRC32 and Huffman codes; zstd's content checksum, which its CLI writes by default).
  // xz blocks carry their sizes, so damage there is always "corrupt"; in gzip and zstd
  // a damaged length may instead run past the end ("truncated"): both name the file.
  std::string bad = good;
  for (size_t i = bad.size() / 2; i < bad.size() / 2 + 8; ++i) bad[i] = static_cast<char>(bad[i] ^ 0x5A);
  write_file(dir / "flip" / name, bad);
  e = error_of([&] { read_documents(dir / "flip" / name, {}); });
  CHECK_THAT(e, LAWCAT_CONTAINS((dir / "flip" / name).string() + ": "));
  CHECK_THAT(e, LAWCAT_CONTAINS(std::string(" ") + compression_name(c) + " stream ("));
  if (c == Compression::kXz) CHECK_THAT(e, LAWCAT_CONTAINS(name + ": corrupt xz stream (compressed data is corrupt)"));
  CHECK_THAT(e, LAWCAT_CONTAINS("at decompressed byte offset"));
  CHECK_THROWS_AS(read_documents(dir / "flip" / name, {}), DataError);
}

TEST_CASE("bad records in a compressed JSONL name the file and line", "[dataset][compressed]") {
  auto dir = test::scratch_dir("compressed_records");
  COMPRESSION_OR_SKIP(Compression::kXz, dir);
  write_file(dir / "nofield.jsonl", "{\"text\": \"ok\"}\n\n{\"body\": \"no text\"}\n");
  auto f = compress(Compression::kXz, dir / "nofield.jsonl");
  CHECK_THAT(error_of([&] { read_documents(f, {}); }),
             LAWCAT_CONTAINS(f.string() + ":3: no field 'text' (choose the field with data.text_field in a run config, --text-field in ppl and eval)"));
  write_file(dir / "notjson.jsonl", "{\"text\": \"ok\"}\n{not json\n");
  f = compress(Compression::kXz, dir / "notjson.jsonl");
  CHECK_THAT(error_of([&] { read_documents(f, {}); }), LAWCAT_CONTAINS(f.string() + ":2: not valid JSON"));
  write_file(dir / "number.jsonl", "{\"text\": \"ok\"}\n{\"text\": 42}\n");
  f = compress(Compression::kXz, dir / "number.jsonl");
  CHECK_THAT(error_of([&] { read_documents(f, {}); }),
             LAWCAT_CONTAINS(f.string() + ":2: field 'text' must be a string, got number"));
}

TEST_CASE("a compressed file that decompresses to invalid UTF-8 names the file and line", "[dataset][compressed]") {
  auto dir = test::scratch_dir("compressed_utf8");
  COMPRESSION_OR_SKIP(Compression::kXz, dir);
  write_file(dir / "latin1.txt", std::string("hello\ncaf\xe9 au lait\n"));
  auto f = compress(Compression::kXz, dir / "latin1.txt");
  CHECK_THAT(error_of([&] { read_documents(f, {}); }),
             LAWCAT_CONTAINS(f.string() + ": not valid UTF-8 at decompressed byte offset 9 (line 2, byte 0xe9)"));
  // A compressed file under a plain name: the hint says so.
  write_file(dir / "renamed.txt", read_file(f));
  CHECK_THAT(error_of([&] { read_documents(dir / "renamed.txt", {}); }),
             LAWCAT_CONTAINS("renamed.txt: not valid UTF-8 at byte offset 0"));
  CHECK_THAT(error_of([&] { read_documents(dir / "renamed.txt", {}); }),
             LAWCAT_CONTAINS("starts like a compressed file (xz)"));
}

namespace {
class ByteTokenizer : public text::Tokenizer {  // byte b -> b + 3, BOS 1, EOS 2
 public:
  std::vector<int64_t> encode(const std::string& t, bool bos, bool eos) const override {
    std::vector<int64_t> out;
    for (unsigned char ch : t) out.push_back(ch + 3);
    return out;
  }
  std::string decode(const std::vector<int64_t>&) const override { return {}; }
  std::string decode_piece(int64_t, int64_t) const override { return {}; }
  int64_t vocab_size() const override { return 259; }
  int64_t bos_id() const override { return 1; }
  int64_t eos_id() const override { return 2; }
  std::string kind() const override { return "bytes"; }
};
}  // namespace

TEST_CASE("token cache over a compressed corpus: hit, and a changed file misses", "[dataset][compressed]") {
  auto dir = test::scratch_dir("compressed_cache");
  COMPRESSION_OR_SKIP(Compression::kXz, dir);
  write_file(dir / "src" / "d.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"cd\"}\n");
  compress(Compression::kXz, dir / "src" / "d.jsonl", dir / "data" / "d.jsonl.xz");
  ByteTokenizer tok;
  TokenizeOptions o;
  o.cache_dir = dir / "cache";
  const std::vector<std::string> paths = {(dir / "data").string()};  // a folder: picks up d.jsonl.xz
  auto c1 = tokenize_corpus(paths, tok, "key", o);
  CHECK_FALSE(c1.from_cache);
  CHECK(c1.tokens == std::vector<int32_t>{1, 'a' + 3, 'b' + 3, 2, 1, 'c' + 3, 'd' + 3, 2});
  CHECK(tokenize_corpus(paths, tok, "key", o).from_cache);
  // Same name, new contents: the compressed bytes changed, so the key did.
  write_file(dir / "src" / "d.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"ce\"}\n");
  compress(Compression::kXz, dir / "src" / "d.jsonl", dir / "data" / "d.jsonl.xz");
  auto c2 = tokenize_corpus(paths, tok, "key", o);
  CHECK_FALSE(c2.from_cache);
  CHECK(c2.tokens[6] == 'e' + 3);
}

TEST_CASE("the shared Wikipedia validation corpus (.jsonl.xz) reads 150 long articles", "[dataset][compressed]") {
  LAWCAT_SHARED_OR_SKIP(file, "corpora/wikipedia/wikipedia_val.jsonl.xz");
  if (!compression_built_in(Compression::kXz)) LAWCAT_SKIP("xz support not built in");
  const auto docs = read_documents(file, {});
  // Independent count: the xz tool and wc, when installed.
  if (have_tool("xz")) {
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen(("xz -dc '" + file.string() + "' | wc -l").c_str(), "r"), &pclose);
    REQUIRE(p);
    long lines = -1;
    REQUIRE(std::fscanf(p.get(), "%ld", &lines) == 1);
    CHECK(static_cast<long>(docs.size()) == lines);
  }
  CHECK(docs.size() == 150);  // data README: 150 held-out articles of >= 3,000 characters
  size_t shorter = 0;
  for (const auto& d : docs) shorter += d.size() < 3000;
  CHECK(shorter == 0);
}
