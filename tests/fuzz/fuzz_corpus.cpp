// libFuzzer target: the corpus readers (dataset/corpus.h read_documents) on text, JSONL and
// Alpaca JSON, plain or compressed (.gz, .xz, .zst; dataset/decompress.h). The first byte
// picks the file name (format and compression), the rest is the file.
#include "dataset/corpus.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  if (size == 0) return 0;
  static const char* const kNames[] = {"c.txt",    "c.jsonl",    "c.json",    "c.txt.gz", "c.jsonl.gz",
                                       "c.txt.xz", "c.jsonl.xz", "c.txt.zst", "c.jsonl.zst", "c.json.gz"};
  const char* name = kNames[data[0] % (sizeof kNames / sizeof *kNames)];
  const auto file = fuzz::write_file(name, std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  fuzz::expect_only_lawcat_errors([&] {
    dataset::CorpusOptions o;
    o.separator = (data[0] & 0x80) ? "%" : "";
    for (const auto& d : dataset::read_documents(file, o))
      if (dataset::find_invalid_utf8(d) != std::string::npos) fuzz::fail("a document is not valid UTF-8");
  });
  return 0;
}
