// Tokenized corpora with an on-disk cache.
//
// Each document becomes [BOS] ids [EOS] (BOS / EOS when the tokenizer has them
// and the options ask for them); documents are concatenated into one stream.
// The cache file is keyed by a hash of the tokenizer files, the data files'
// contents and every setting that changes the tokens, so editing a file or
// switching tokenizers re-tokenizes and nothing stale is ever read. Written
// atomically (util/fs atomic_write).
//
// Cache file: "LWCTOK01", u64 documents, u64 tokens, u64 offsets[documents+1],
// i32 tokens[tokens] (little-endian).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dataset/corpus.h"
#include "text/tokenizer.h"

namespace lawcat::dataset {

struct TokenizedCorpus {
  std::vector<int32_t> tokens;        // all documents, concatenated
  std::vector<int64_t> doc_offsets;   // documents + 1 entries; document i = tokens[off[i], off[i+1])
  std::vector<std::string> files;     // where it came from (for messages)
  bool from_cache = false;
  int64_t num_docs() const { return doc_offsets.empty() ? 0 : static_cast<int64_t>(doc_offsets.size()) - 1; }
  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  std::string describe_files() const;  // "a.txt, b.txt" (shortened when long)
};

struct TokenizeOptions {
  CorpusOptions corpus;
  bool add_bos = true;
  bool add_eos = true;
  int64_t max_tokens = 0;             // 0 = all; else the stream is cut after this many tokens
  std::filesystem::path cache_dir;    // empty = no cache
};

// 64-bit FNV-1a, chainable (pass the previous value as `h`).
uint64_t hash_bytes(const void* data, size_t size, uint64_t h = 0xcbf29ce484222325ULL);
std::string hex64(uint64_t v);

// Hash of the tokenizer files in a model directory (tokenizer.json, tokenizer.model,
// tokenizer.bin, tokenizer_config.json): the tokenizer's identity for cache keys.
std::string tokenizer_fingerprint(const std::filesystem::path& model_dir);

// Reads, tokenizes (or loads from the cache) the given files and folders.
// DataError naming the files when they hold no document at all.
TokenizedCorpus tokenize_corpus(const std::vector<std::string>& paths, const text::Tokenizer& tokenizer,
                                const std::string& tokenizer_key, const TokenizeOptions& options);

// The cache file tokenize_corpus would use (for tests and logs).
std::filesystem::path cache_file_for(const std::vector<std::string>& paths, const std::string& tokenizer_key,
                                     const TokenizeOptions& options);

}  // namespace lawcat::dataset
