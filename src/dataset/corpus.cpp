#include "dataset/corpus.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "dataset/decompress.h"
#include "util/error.h"

namespace lawcat::dataset {
namespace stdfs = std::filesystem;

namespace {
// Extension of what is inside: "x.JSONL.xz" -> ".jsonl".
std::string lower_ext(const stdfs::path& p) {
  std::string e = strip_compression_suffix(p).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// 1-based line number of byte `offset`.
int64_t line_of(std::string_view text, size_t offset) {
  return 1 + std::count(text.begin(), text.begin() + std::min(offset, text.size()), '\n');
}

std::string hex_byte(char c) {
  static const char* kDigits = "0123456789abcdef";
  const auto b = static_cast<unsigned char>(c);
  return {kDigits[b >> 4], kDigits[b & 15]};
}

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string read_checked_impl(const stdfs::path& file) {
  std::error_code ec;
  LAWCAT_CHECK(stdfs::exists(file, ec), DataError, file.string() << ": file not found");
  LAWCAT_CHECK(stdfs::is_regular_file(file, ec), DataError, file.string() << ": not a regular file");
  const Compression c = compression_of(file);
  std::string text = read_decompressed(file);
  size_t bad = find_invalid_utf8(text);
  if (bad == std::string::npos) return text;
  std::string hint = "; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)";
  if (const Compression inside = sniff_compression(text); c == Compression::kNone && inside != Compression::kNone)
    hint = std::string("; it starts like a compressed file (") + compression_name(inside) +
           "): name it with that suffix (.xz, .gz, .zst) so it is decompressed";
  throw DataError(file.string() + ": not valid UTF-8 at " + (c == Compression::kNone ? "" : "decompressed ") +
                  "byte offset " + std::to_string(bad) + " (line " + std::to_string(line_of(text, bad)) +
                  ", byte 0x" + hex_byte(text[bad]) + ")" + hint);
}

std::string string_field(const nlohmann::json& rec, const char* key, const std::string& where, bool required) {
  auto it = rec.find(key);
  if (it == rec.end() || it->is_null()) {
    LAWCAT_CHECK(!required, DataError, where << ": missing field '" << key << "'");
    return {};
  }
  LAWCAT_CHECK(it->is_string(), DataError,
               where << ": field '" << key << "' must be a string, got " << it->type_name());
  return it->get<std::string>();
}

std::string alpaca_record(const nlohmann::json& rec, const std::string& where) {
  LAWCAT_CHECK(rec.is_object(), DataError, where << ": expected an object {instruction, input, output}, got "
                                                 << rec.type_name());
  return render_alpaca(string_field(rec, "instruction", where, true), string_field(rec, "input", where, false),
                       string_field(rec, "output", where, true));
}

// Calls fn(json, "file:line") for each non-blank line of a JSONL file.
template <class Fn>
void for_each_jsonl(const stdfs::path& file, const std::string& text, Fn&& fn) {
  size_t pos = 0;
  int64_t line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string_view l = trim(std::string_view(text).substr(pos, end - pos));
    pos = end + 1;
    if (l.empty()) continue;
    const std::string where = file.string() + ":" + std::to_string(line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(l);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(where + ": not valid JSON: " + e.what());
    }
    fn(j, where);
  }
}
}  // namespace

std::string resolve_format(const stdfs::path& file, const std::string& format) {
  if (format != "auto") return format;
  const std::string e = lower_ext(file);
  if (e == ".jsonl") return "jsonl";
  if (e == ".json") return "alpaca";
  return "text";
}

std::vector<stdfs::path> expand_paths(const std::vector<std::string>& paths) {
  static const std::set<std::string> kExts = {".txt", ".md", ".text", ".jsonl", ".json"};
  auto is_corpus_file = [](const stdfs::path& f) {  // compressed too: x.jsonl.xz, x.txt.gz, x.json.zst
    return kExts.count(lower_ext(f)) > 0;
  };
  std::vector<stdfs::path> out;
  for (const auto& p : paths) {
    std::error_code ec;
    stdfs::path path(p);
    LAWCAT_CHECK(stdfs::exists(path, ec), DataError, p << ": no such file or folder");
    if (!stdfs::is_directory(path, ec)) {
      out.push_back(path);
      continue;
    }
    std::vector<stdfs::path> found;
    for (auto it = stdfs::recursive_directory_iterator(path, ec); !ec && it != stdfs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_regular_file() && is_corpus_file(it->path())) found.push_back(it->path());
    }
    LAWCAT_CHECK(!ec, DataError, p << ": cannot list folder: " << ec.message());
    LAWCAT_CHECK(!found.empty(), DataError,
                 p << ": folder has no corpus files (looked for .txt .md .text .jsonl .json, recursively)");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

size_t find_invalid_utf8(std::string_view s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = b[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    // overlong forms, surrogates, beyond U+10FFFF
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return i;
    i += len;
  }
  return std::string_view::npos;
}

std::vector<std::string> split_text_documents(std::string_view text, const std::string& separator) {
  std::vector<std::string> docs;
  std::string cur;
  auto flush = [&] {
    std::string_view t = trim(cur);
    if (!t.empty()) docs.emplace_back(t);
    cur.clear();
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool boundary = separator.empty() ? trim(line).empty() : line == separator;
    if (boundary) {
      flush();
    } else {
      cur.append(line);
      cur.push_back('\n');
    }
    if (end == text.size()) break;
    pos = end + 1;
  }
  flush();
  return docs;
}

std::string render_alpaca(const std::string& instruction, const std::string& input, const std::string& output) {
  if (trim(input).empty()) {
    return "Below is an instruction that describes a task. Write a response that appropriately completes the "
           "request.\n\n### Instruction:\n" +
           instruction + "\n\n### Response:\n" + output;
  }
  return "Below is an instruction that describes a task, paired with an input that provides further context. "
         "Write a response that appropriately completes the request.\n\n### Instruction:\n" +
         instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n" + output;
}

std::vector<std::string> read_documents(const stdfs::path& file, const CorpusOptions& options) {
  const std::string format = resolve_format(file, options.format);
  const std::string text = read_checked_impl(file);
  std::vector<std::string> docs;
  if (format == "text") {
    docs = split_text_documents(text, options.separator);
  } else if (format == "jsonl") {
    for_each_jsonl(file, text, [&](const nlohmann::json& j, const std::string& where) {
      LAWCAT_CHECK(j.is_object(), DataError, where << ": expected a JSON object, got " << j.type_name());
      auto it = j.find(options.text_field);
      LAWCAT_CHECK(it != j.end(), DataError,
                   where << ": no field '" << options.text_field
                         << "' (choose the field with data.text_field in a run config, --text-field in ppl and eval)");
      LAWCAT_CHECK(it->is_string(), DataError,
                   where << ": field '" << options.text_field << "' must be a string, got " << it->type_name());
      std::string s = it->get<std::string>();
      if (!trim(s).empty()) docs.push_back(std::move(s));
    });
  } else if (format == "alpaca") {
    if (lower_ext(file) == ".jsonl") {
      for_each_jsonl(file, text, [&](const nlohmann::json& j, const std::string& where) {
        docs.push_back(alpaca_record(j, where));
      });
    } else {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& e) {
        throw DataError(file.string() + ": not valid JSON: " + e.what());
      }
      LAWCAT_CHECK(j.is_array(), DataError,
                   file.string() << ": Alpaca data must be a JSON array of {instruction, input, output}, got "
                                 << j.type_name());
      for (size_t i = 0; i < j.size(); ++i)
        docs.push_back(alpaca_record(j[i], file.string() + ": record " + std::to_string(i)));
    }
  } else {
    throw DataError(file.string() + ": unknown data format '" + format + "' (auto, text, jsonl, alpaca)");
  }
  return docs;
}

std::string read_text_checked(const std::filesystem::path& file) { return read_checked_impl(file); }

}  // namespace lawcat::dataset
