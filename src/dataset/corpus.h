// Corpus readers: text files (documents separated by blank lines, or by a
// separator line such as fortune's "%"), JSONL with a text field, and Alpaca
// instruction records rendered with the Alpaca prompt template. Any of them may
// be compressed (.xz, .gz, .zst; dataset/decompress.h): it is decoded in memory
// and read as the file named without that suffix.
//
// Every reader checks UTF-8 first and names the file and byte offset of the
// first bad byte; missing files and folders without any corpus file are
// DataErrors naming the path.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lawcat::dataset {

struct CorpusOptions {
  std::string format = "auto";     // auto (by extension), text, jsonl, alpaca
  std::string text_field = "text";  // JSONL: the field holding a document
  std::string separator;            // text: "" = blank lines; else a line equal to this ends a document
};

// Format of one file: `format` unless "auto"; then, after dropping a compression
// suffix (x.jsonl.xz -> x.jsonl), .jsonl -> jsonl, .json -> alpaca, anything else -> text.
std::string resolve_format(const std::filesystem::path& file, const std::string& format);

// Files and folders -> files. Folders are walked recursively in sorted order and
// contribute files ending in .txt .md .text .jsonl .json, alone or followed by
// .xz .gz .zst (x.jsonl.xz); files named explicitly are taken whatever their name. Missing paths: DataError.
std::vector<std::filesystem::path> expand_paths(const std::vector<std::string>& paths);

// Byte offset of the first invalid UTF-8 sequence, or npos.
size_t find_invalid_utf8(std::string_view text);

// The whole file as text (decompressed when named .xz / .gz / .zst). DataError naming the
// file for a missing file, and the file and byte offset (line, byte) of the first
// invalid UTF-8 sequence: every reader of user text (training corpora, ppl, eval) uses it.
std::string read_text_checked(const std::filesystem::path& file);

// Splits text into trimmed, non-empty documents: on blank (whitespace-only)
// lines when separator is empty, else on lines equal to separator.
std::vector<std::string> split_text_documents(std::string_view text, const std::string& separator = "");

// The Stanford Alpaca prompt template (with / without an input) followed by the output.
std::string render_alpaca(const std::string& instruction, const std::string& input,
                          const std::string& output);

// Documents of one file (format resolved as above). DataError naming the file
// (and line / record / byte offset) for unreadable, non-UTF-8 or malformed input,
// and for a corrupt or truncated compressed file (the decompressed offset reached).
std::vector<std::string> read_documents(const std::filesystem::path& file, const CorpusOptions& options);

}  // namespace lawcat::dataset
