#include "text/unicode.h"

#include <algorithm>
#include <stdexcept>

#ifdef LAWCAT_HAVE_ICU
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/utypes.h>
#endif

namespace lawcat::text::unicode {

bool nfc_available() {
#ifdef LAWCAT_HAVE_ICU
  return true;
#else
  return false;
#endif
}

std::string to_nfc(std::string_view s) {
#ifdef LAWCAT_HAVE_ICU
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return std::string(s);
  if (!is_valid_utf8(s)) return std::string(s);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU NFC normalizer: ") + u_errorName(status));
  std::string out;
  out.reserve(s.size());
  icu::StringByteSink<std::string> sink(&out);
  // ICU takes int32 lengths: longer text goes in pieces cut before a code point that starts a
  // new composition (hasBoundaryBefore), where NFC of the pieces is NFC of the whole.
  constexpr size_t kPiece = size_t{1} << 30;
  size_t begin = 0;
  while (begin < s.size()) {
    size_t end = s.size();
    if (end - begin > kPiece) {
      end = begin + kPiece;
      size_t len = 0;
      while (end > begin + 1 &&
             ((static_cast<unsigned char>(s[end]) & 0xC0) == 0x80 || !nfc->hasBoundaryBefore(decode_utf8(s, end, &len))))
        --end;
      if (end == begin + 1) end = begin + kPiece;  // no boundary (not real text): cut anyway
      while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) ++end;
    }
    const icu::StringPiece in(s.data() + begin, static_cast<int32_t>(end - begin));
    nfc->normalizeUTF8(0, in, sink, nullptr, status);
    if (U_FAILURE(status))
      throw std::runtime_error(std::string("ICU NFC normalization failed: ") + u_errorName(status));
    begin = end;
  }
  return out;
#else
  (void)s;
  throw std::logic_error("to_nfc: lawcat was built without ICU (libicu-dev)");
#endif
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t decode_utf8(std::string_view s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = utf8_len(c);
  if (n == 1 || i + n > s.size()) {
    *len = 1;
    return c;
  }
  uint32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      *len = 1;
      return c;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  *len = n;
  return cp;
}

namespace {
// Length of the valid UTF-8 sequence at s[i], or 0 with `bad` set to the number
// of bytes forming the maximal invalid prefix (the Unicode "maximal subpart").
size_t valid_sequence(std::string_view s, size_t i, size_t* bad) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) {
      *bad = k;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      *bad = k;
      return 0;
    }
  }
  return need;
}
}  // namespace

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = 0;
    size_t n = valid_sequence(s, i, &bad);
    if (n) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += bad;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = 0;
    size_t n = valid_sequence(s, i, &bad);
    if (!n) return false;
    i += n;
  }
  return true;
}

bool is_whitespace(uint32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

namespace {
struct ByteMaps {
  std::array<uint32_t, 256> b2u{};
  std::array<int16_t, 512> u2b{};  // every mapped code point is < 0x144
  ByteMaps() {
    u2b.fill(-1);
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      b2u[b] = printable ? b : 256 + n++;
      u2b[b2u[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteMaps& maps() {
  static const ByteMaps m;
  return m;
}
}  // namespace

const std::array<uint32_t, 256>& byte_to_unicode() { return maps().b2u; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? maps().u2b[cp] : -1; }

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& b2u = maps().b2u;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, b2u[static_cast<unsigned char>(c)]);
  return out;
}

}  // namespace lawcat::text::unicode
