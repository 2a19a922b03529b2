// Compressed corpus files: .xz (liblzma), .gz (zlib), .zst (libzstd), chosen by
// the file's last suffix and decoded in chunks through each library's streaming
// API straight into memory (no decompressed copy on disk). Concatenated files
// (several xz streams, gzip members or zstd frames, as `cat a.xz b.xz` or
// `pxz` / `pigz` / `zstd -T` write them) decode as one.
//
// Each library is optional at build time (LAWCAT_HAVE_LZMA / _ZLIB / _ZSTD, set by
// cmake/lawcat_compression.cmake); reading a file whose library is missing is a
// DataError saying which package to install.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace lawcat::dataset {

enum class Compression { kNone, kXz, kGzip, kZstd };

// By the last suffix, case-insensitive: .xz, .gz, .zst; anything else kNone.
Compression compression_of(const std::filesystem::path& file);

// The path without its compression suffix ("a/x.jsonl.xz" -> "a/x.jsonl"), for
// resolving the format of what is inside; unchanged when not compressed.
std::filesystem::path strip_compression_suffix(const std::filesystem::path& file);

// "xz", "gzip", "zstd" ("none" for kNone).
const char* compression_name(Compression c);

// Whether this build can decode `c` (kNone: always).
bool compression_built_in(Compression c);

// The compression whose magic bytes `head` starts with (kNone when none), for
// hints when a compressed file is read under a plain name.
Compression sniff_compression(std::string_view head);

// The whole file, decompressed when its suffix says so (else read as is).
// DataError naming the file: missing or unreadable, built without that library,
// an empty or non-matching file, a corrupt or truncated stream (with the
// decompressed byte offset and line reached).
std::string read_decompressed(const std::filesystem::path& file);

}  // namespace lawcat::dataset
