#include "dataset/decompress.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#ifdef LAWCAT_HAVE_LZMA
#include <lzma.h>
#endif
#ifdef LAWCAT_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef LAWCAT_HAVE_ZSTD
#include <zstd.h>
#endif

#include "util/error.h"
#include "util/fs.h"

namespace lawcat::dataset {
namespace stdfs = std::filesystem;

namespace {
constexpr size_t kChunk = 1 << 16;  // compressed bytes read per call; decoded bytes per output step

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The compressed file, read kChunk bytes at a time.
class ChunkReader {
 public:
  explicit ChunkReader(const stdfs::path& file) : file_(file), f_(std::fopen(file.c_str(), "rb"), &std::fclose) {
    LAWCAT_CHECK(f_, DataError, file.string() << ": cannot open: " << std::strerror(errno));
  }
  // Next chunk (empty at end of file).
  std::string_view next() {
    const size_t n = std::fread(buf_.get(), 1, kChunk, f_.get());
    LAWCAT_CHECK(n > 0 || !std::ferror(f_.get()), DataError,
                 file_.string() << ": read error: " << std::strerror(errno));
    total_ += n;
    return {buf_.get(), n};
  }
  size_t total() const { return total_; }  // compressed bytes read so far

 private:
  stdfs::path file_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f_;
  std::unique_ptr<char[]> buf_{new char[kChunk]};
  size_t total_ = 0;
};

// "<file>: corrupt xz stream (what) at decompressed byte offset N (line L)".
// (These helpers are unused in a build without any of the libraries.)
[[noreturn, maybe_unused]] void stream_error(const stdfs::path& file, Compression c, const char* kind,
                                             const std::string& what, const std::string& out) {
  const auto line = 1 + std::count(out.begin(), out.end(), '\n');
  throw DataError(file.string() + ": " + kind + " " + compression_name(c) + " stream (" + what +
                  ") at decompressed byte offset " + std::to_string(out.size()) + " (line " +
                  std::to_string(line) + "); re-download or re-compress the file");
}

[[noreturn, maybe_unused]] void empty_file(const stdfs::path& file, Compression c) {
  throw DataError(file.string() + ": empty file, not " + (c == Compression::kXz ? "an " : "a ") + compression_name(c) +
                  " stream");
}

#ifdef LAWCAT_HAVE_LZMA
const char* lzma_message(lzma_ret r) {
  switch (r) {
    case LZMA_FORMAT_ERROR: return "not in the xz format";
    case LZMA_OPTIONS_ERROR: return "unsupported compression options";
    case LZMA_DATA_ERROR: return "compressed data is corrupt";
    case LZMA_BUF_ERROR: return "unexpected end of input";
    case LZMA_MEM_ERROR: return "out of memory";
    case LZMA_MEMLIMIT_ERROR: return "memory limit reached";
    default: return "liblzma error";
  }
}

std::string decode_xz(const stdfs::path& file) {
  lzma_stream s = LZMA_STREAM_INIT;
  // LZMA_CONCATENATED: several streams back to back (and stream padding) decode as one.
  lzma_ret r = lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED);
  LAWCAT_CHECK(r == LZMA_OK, DataError, file.string() << ": cannot start the xz decoder: " << lzma_message(r));
  std::unique_ptr<lzma_stream, void (*)(lzma_stream*)> guard(&s, &lzma_end);
  ChunkReader in(file);
  std::string out;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kChunk]);
  lzma_action action = LZMA_RUN;
  for (;;) {
    if (s.avail_in == 0 && action == LZMA_RUN) {
      std::string_view c = in.next();
      if (c.empty()) {
        if (in.total() == 0) empty_file(file, Compression::kXz);
        action = LZMA_FINISH;
      }
      s.next_in = reinterpret_cast<const uint8_t*>(c.data());
      s.avail_in = c.size();
    }
    s.next_out = buf.get();
    s.avail_out = kChunk;
    r = lzma_code(&s, action);
    out.append(reinterpret_cast<const char*>(buf.get()), kChunk - s.avail_out);
    if (r == LZMA_STREAM_END) return out;
    if (r == LZMA_BUF_ERROR) stream_error(file, Compression::kXz, "truncated", lzma_message(r), out);
    if (r != LZMA_OK) stream_error(file, Compression::kXz, "corrupt", lzma_message(r), out);
  }
}
#endif

#ifdef LAWCAT_HAVE_ZLIB
std::string decode_gzip(const stdfs::path& file) {
  z_stream s{};
  // 15 + 32: the largest window, gzip or zlib header detected automatically.
  LAWCAT_CHECK(inflateInit2(&s, 15 + 32) == Z_OK, DataError, file.string() << ": cannot start the gzip decoder");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&s, &inflateEnd);
  ChunkReader in(file);
  std::string out;
  std::unique_ptr<Bytef[]> buf(new Bytef[kChunk]);
  bool member_done = false;  // the last member ended: end of file is fine here
  bool out_full = false;     // the last call filled the output: call again before reading
  for (;;) {
    if (s.avail_in == 0 && !out_full) {
      std::string_view c = in.next();
      if (c.empty()) break;
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(c.data()));
      s.avail_in = static_cast<uInt>(c.size());
    }
    if (member_done) {
      // Another member follows (pigz, `cat a.gz b.gz`); zero padding after the last is ignored, as gzip does.
      while (s.avail_in > 0 && *s.next_in == 0) ++s.next_in, --s.avail_in;
      if (s.avail_in == 0) continue;
      inflateReset(&s);
      member_done = false;
    }
    s.next_out = buf.get();
    s.avail_out = kChunk;
    const int r = inflate(&s, Z_NO_FLUSH);
    out.append(reinterpret_cast<const char*>(buf.get()), kChunk - s.avail_out);
    out_full = s.avail_out == 0;
    if (r == Z_STREAM_END) {
      member_done = true;
      out_full = false;
    } else if (r == Z_BUF_ERROR) {  // no progress possible without more input
      out_full = false;
    } else if (r != Z_OK) {
      stream_error(file, Compression::kGzip, "corrupt", s.msg ? s.msg : "zlib error " + std::to_string(r), out);
    }
  }
  if (in.total() == 0) empty_file(file, Compression::kGzip);
  if (!member_done) stream_error(file, Compression::kGzip, "truncated", "unexpected end of input", out);
  return out;
}
#endif

#ifdef LAWCAT_HAVE_ZSTD
std::string decode_zstd(const stdfs::path& file) {
  std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> ds(ZSTD_createDStream(), &ZSTD_freeDStream);
  LAWCAT_CHECK(ds && !ZSTD_isError(ZSTD_initDStream(ds.get())), DataError,
               file.string() << ": cannot start the zstd decoder");
  ChunkReader in(file);
  std::string out;
  const size_t out_size = ZSTD_DStreamOutSize();
  std::unique_ptr<char[]> buf(new char[out_size]);
  size_t last = 0;  // 0 once a frame is complete and flushed; a following frame is decoded the same way
  for (std::string_view c = in.next(); !c.empty(); c = in.next()) {
    ZSTD_inBuffer zin{c.data(), c.size(), 0};
    // zstd keeps the last byte of a frame until all of its output is flushed, so
    // "input consumed" is enough to go on reading.
    while (zin.pos < zin.size) {
      ZSTD_outBuffer zout{buf.get(), out_size, 0};
      last = ZSTD_decompressStream(ds.get(), &zout, &zin);
      if (ZSTD_isError(last)) stream_error(file, Compression::kZstd, "corrupt", ZSTD_getErrorName(last), out);
      out.append(buf.get(), zout.pos);
    }
  }
  if (in.total() == 0) empty_file(file, Compression::kZstd);
  if (last != 0) stream_error(file, Compression::kZstd, "truncated", "unexpected end of input", out);
  return out;
}
#endif

#if !defined(LAWCAT_HAVE_LZMA) || !defined(LAWCAT_HAVE_ZLIB) || !defined(LAWCAT_HAVE_ZSTD)
[[noreturn]] void not_built(const stdfs::path& file, Compression c, const char* package) {
  throw DataError(file.string() + ": this lawcat was built without " + compression_name(c) + " support (install " +
                  package + " and rebuild)");
}
#endif
}  // namespace

Compression compression_of(const stdfs::path& file) {
  const std::string e = lower(file.extension().string());
  if (e == ".xz") return Compression::kXz;
  if (e == ".gz") return Compression::kGzip;
  if (e == ".zst") return Compression::kZstd;
  return Compression::kNone;
}

stdfs::path strip_compression_suffix(const stdfs::path& file) {
  if (compression_of(file) == Compression::kNone) return file;
  stdfs::path p = file;
  return p.replace_extension();
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kXz: return "xz";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    default: return "none";
  }
}

bool compression_built_in(Compression c) {
  switch (c) {
#ifdef LAWCAT_HAVE_LZMA
    case Compression::kXz: return true;
#endif
#ifdef LAWCAT_HAVE_ZLIB
    case Compression::kGzip: return true;
#endif
#ifdef LAWCAT_HAVE_ZSTD
    case Compression::kZstd: return true;
#endif
    case Compression::kNone: return true;
    default: return false;
  }
}

Compression sniff_compression(std::string_view h) {
  auto starts = [&](std::string_view magic) { return h.substr(0, magic.size()) == magic; };
  if (starts(std::string_view("\xFD" "7zXZ\0", 6))) return Compression::kXz;
  if (starts("\x1F\x8B")) return Compression::kGzip;
  if (starts("\x28\xB5\x2F\xFD")) return Compression::kZstd;
  return Compression::kNone;
}

std::string read_decompressed(const stdfs::path& file) {
  const Compression c = compression_of(file);
  switch (c) {
    case Compression::kXz:
#ifdef LAWCAT_HAVE_LZMA
      return decode_xz(file);
#else
      not_built(file, c, "liblzma-dev");
#endif
    case Compression::kGzip:
#ifdef LAWCAT_HAVE_ZLIB
      return decode_gzip(file);
#else
      not_built(file, c, "zlib1g-dev");
#endif
    case Compression::kZstd:
#ifdef LAWCAT_HAVE_ZSTD
      return decode_zstd(file);
#else
      not_built(file, c, "libzstd-dev");
#endif
    default:
      return fs::read_text(file);
  }
}

}  // namespace lawcat::dataset
