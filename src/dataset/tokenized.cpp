#include "dataset/tokenized.h"

#include <cstdio>
#include <cstring>
#include <optional>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/progress.h"

namespace lawcat::dataset {
namespace stdfs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'L', 'W', 'C', 'T', 'O', 'K', '0', '1'};

uint64_t hash_string(const std::string& s, uint64_t h) {
  uint64_t n = s.size();
  h = hash_bytes(&n, sizeof n, h);  // length-prefixed: no ambiguity between fields
  return hash_bytes(s.data(), s.size(), h);
}

uint64_t hash_file(const stdfs::path& p, uint64_t h) {
  fs::MappedFile m(p);
  uint64_t n = m.size();
  h = hash_bytes(&n, sizeof n, h);
  return hash_bytes(m.data(), m.size(), h);
}

bool read_cache(const stdfs::path& file, TokenizedCorpus& out) {
  std::error_code ec;
  if (!stdfs::is_regular_file(file, ec)) return false;
  fs::MappedFile m(file);
  const uint8_t* p = m.data();
  const size_t n = m.size();
  if (n < 24 || std::memcmp(p, kMagic, 8) != 0) return false;
  uint64_t docs, toks;
  std::memcpy(&docs, p + 8, 8);
  std::memcpy(&toks, p + 16, 8);
  const size_t need = 24 + (docs + 1) * 8 + toks * 4;
  if (docs > n || toks > n || need != n) {
    log::warn("tokenized cache ", file.string(), " is damaged (", n, " bytes, expected ", need, "); rebuilding");
    return false;
  }
  out.doc_offsets.resize(docs + 1);
  std::memcpy(out.doc_offsets.data(), p + 24, (docs + 1) * 8);
  out.tokens.resize(toks);
  std::memcpy(out.tokens.data(), p + 24 + (docs + 1) * 8, toks * 4);
  if (out.doc_offsets.front() != 0 || out.doc_offsets.back() != static_cast<int64_t>(toks)) {
    log::warn("tokenized cache ", file.string(), " has inconsistent offsets; rebuilding");
    return false;
  }
  return true;
}

void write_cache(const stdfs::path& file, const TokenizedCorpus& c) {
  fs::atomic_write(file, [&](std::FILE* f) {
    uint64_t docs = c.num_docs(), toks = c.tokens.size();
    auto put = [&](const void* d, size_t bytes) {
      if (bytes && std::fwrite(d, 1, bytes, f) != bytes) throw Error("short write (disk full?)");
    };
    put(kMagic, 8);
    put(&docs, 8);
    put(&toks, 8);
    put(c.doc_offsets.data(), c.doc_offsets.size() * 8);
    put(c.tokens.data(), c.tokens.size() * 4);
  });
}
}  // namespace

uint64_t hash_bytes(const void* data, size_t size, uint64_t h) {
  const auto* b = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string TokenizedCorpus::describe_files() const {
  std::string s;
  for (size_t i = 0; i < files.size() && i < 6; ++i) s += (i ? ", " : "") + files[i];
  if (files.size() > 6) s += " and " + std::to_string(files.size() - 6) + " more";
  return s;
}

std::string tokenizer_fingerprint(const stdfs::path& model_dir) {
  uint64_t h = hash_string("lawcat-tokenizer-v1", 0xcbf29ce484222325ULL);
  int found = 0;
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer.bin", "tokenizer_config.json"}) {
    std::error_code ec;
    if (!stdfs::is_regular_file(model_dir / name, ec)) continue;
    h = hash_string(name, h);
    h = hash_file(model_dir / name, h);
    ++found;
  }
  LAWCAT_CHECK(found > 0, DataError,
               model_dir.string() << ": no tokenizer files (tokenizer.json, tokenizer.model, tokenizer.bin)");
  return hex64(h);
}

stdfs::path cache_file_for(const std::vector<std::string>& paths, const std::string& tokenizer_key,
                           const TokenizeOptions& o) {
  uint64_t h = hash_string("lawcat-tokens-v1", 0xcbf29ce484222325ULL);
  h = hash_string(tokenizer_key, h);
  h = hash_string(o.corpus.format + "|" + o.corpus.text_field + "|" + o.corpus.separator + "|" +
                      std::to_string(o.add_bos) + std::to_string(o.add_eos) + "|" + std::to_string(o.max_tokens),
                  h);
  for (const auto& f : expand_paths(paths)) {
    h = hash_string(resolve_format(f, o.corpus.format), h);
    h = hash_file(f, h);  // compressed files as stored (x.jsonl.xz): any change to them changes the key
  }
  return o.cache_dir / ("tokens-" + hex64(h) + ".bin");
}

TokenizedCorpus tokenize_corpus(const std::vector<std::string>& paths, const text::Tokenizer& tokenizer,
                                const std::string& tokenizer_key, const TokenizeOptions& o) {
  TokenizedCorpus c;
  const auto files = expand_paths(paths);
  for (const auto& f : files) c.files.push_back(f.string());
  stdfs::path cache;
  if (!o.cache_dir.empty()) {
    cache = cache_file_for(paths, tokenizer_key, o);
    if (read_cache(cache, c)) {
      c.from_cache = true;
      log::info("tokens: ", c.num_tokens(), " in ", c.num_docs(), " documents from cache ", cache.string());
      return c;
    }
  }
  c.doc_offsets.push_back(0);
  const int64_t bos = o.add_bos ? tokenizer.bos_id() : -1;
  const int64_t eos = o.add_eos ? tokenizer.eos_id() : -1;
  bool done = false;
  int64_t doc_count = 0;
  std::vector<std::vector<std::string>> per_file;
  for (const auto& f : files) {
    per_file.push_back(read_documents(f, o.corpus));
    doc_count += per_file.back().size();
  }
  LAWCAT_CHECK(doc_count > 0, DataError,
               "no documents in " << c.describe_files() << " (empty files? format '" << o.corpus.format << "')");
  std::optional<Progress> progress;  // only when it takes a while
  if (doc_count > 20000) progress.emplace("tokenizing", doc_count, "docs");
  for (size_t fi = 0; fi < files.size() && !done; ++fi) {
    for (const auto& doc : per_file[fi]) {
      std::vector<int64_t> ids = tokenizer.encode(doc, false, false);
      if (bos >= 0) c.tokens.push_back(static_cast<int32_t>(bos));
      for (int64_t id : ids) c.tokens.push_back(static_cast<int32_t>(id));
      if (eos >= 0) c.tokens.push_back(static_cast<int32_t>(eos));
      if (o.max_tokens > 0 && c.num_tokens() >= o.max_tokens) {
        c.tokens.resize(o.max_tokens);
        done = true;
      }
      c.doc_offsets.push_back(c.num_tokens());
      if (progress) progress->advance();
      if (done) break;
    }
  }
  if (progress) progress->finish();
  log::info("tokens: ", c.num_tokens(), " in ", c.num_docs(), " documents from ", c.describe_files());
  if (!cache.empty()) {
    try {
      write_cache(cache, c);
    } catch (const std::exception& e) {  // a cache is an optimisation: warn, keep going
      log::warn("could not write the token cache: ", e.what());
    }
  }
  return c;
}

}  // namespace lawcat::dataset
