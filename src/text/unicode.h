// UTF-8 helpers shared by the tokenizers: byte-level (GPT-2) byte <-> char map,
// lossy UTF-8 repair (as Rust's String::from_utf8_lossy, which HF tokenizers uses),
// character lengths and whitespace classes.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace lawcat::text::unicode {

// Length in bytes of the UTF-8 sequence starting with lead byte `c`
// (1 for ASCII and for invalid lead bytes, so callers always make progress).
inline size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Appends the UTF-8 encoding of code point `cp` to `out`.
void append_utf8(std::string& out, uint32_t cp);

// Decodes the code point at s[i] (valid UTF-8 assumed; an invalid byte decodes
// to itself as a code point of one byte). Sets `len` to the bytes consumed.
uint32_t decode_utf8(std::string_view s, size_t i, size_t* len);

// `s` with every invalid UTF-8 sequence replaced by U+FFFD, exactly as Rust's
// String::from_utf8_lossy (one replacement per maximal invalid prefix).
std::string to_valid_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);

// Unicode Normalization Form C (canonical decomposition, then canonical composition) of
// `s`, as the `tokenizers` crate's NFC normalizer, through ICU (CMake finds it optionally:
// libicu-dev). Without ICU nfc_available() is false and to_nfc throws. Text that is not
// valid UTF-8 is returned unchanged; ASCII is returned without calling ICU.
bool nfc_available();
std::string to_nfc(std::string_view s);

// Unicode White_Space property.
bool is_whitespace(uint32_t cp);

// GPT-2's bytes_to_unicode: each byte maps to a printable code point (printable
// Latin-1 bytes to themselves, the rest to U+0100.. in order).
const std::array<uint32_t, 256>& byte_to_unicode();
// Inverse of byte_to_unicode; -1 for code points that are not in the map.
int unicode_to_byte(uint32_t cp);
// The byte-level form of `bytes` (each byte mapped, UTF-8 encoded).
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace lawcat::text::unicode
