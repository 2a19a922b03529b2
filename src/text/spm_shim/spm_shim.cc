// liblawcat_spm_shim.so: SentencePiece behind a C interface (spm_shim.h says why).
// Links sentencepiece only, never torch. Every entry point catches everything.
#include "spm_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#define LAWCAT_SPM_API extern "C" __attribute__((visibility("default")))

struct lawcat_spm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

// malloc'ed copy of s (the caller frees it with lawcat_spm_free_string).
char* dup_string(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

void set_err(char** err, const std::string& msg) {
  if (err) *err = dup_string(msg);
}

}  // namespace

LAWCAT_SPM_API int lawcat_spm_abi_version(void) { return LAWCAT_SPM_SHIM_ABI; }

LAWCAT_SPM_API lawcat_spm* lawcat_spm_load(const char* path, char** err) {
  if (err) *err = nullptr;
  try {
    auto* h = new lawcat_spm;
    auto status = h->sp.Load(path);
    if (!status.ok()) {
      set_err(err, status.ToString());
      delete h;
      return nullptr;
    }
    if (h->sp.GetPieceSize() <= 0) {
      set_err(err, "model has an empty vocabulary");
      delete h;
      return nullptr;
    }
    return h;
  } catch (const std::exception& e) {
    set_err(err, std::string("exception while loading: ") + e.what());
  } catch (...) {
    set_err(err, "unknown exception while loading");
  }
  return nullptr;
}

LAWCAT_SPM_API void lawcat_spm_free(lawcat_spm* h) { delete h; }

LAWCAT_SPM_API int lawcat_spm_encode(const lawcat_spm* h, const char* text, size_t len,
                                     int32_t** ids, size_t* n, char** err) {
  if (err) *err = nullptr;
  *ids = nullptr;
  *n = 0;
  try {
    std::vector<int> out;
    auto status = h->sp.Encode(absl::string_view(text, len), &out);
    if (!status.ok()) {
      set_err(err, status.ToString());
      return 1;
    }
    if (!out.empty()) {
      *ids = static_cast<int32_t*>(std::malloc(out.size() * sizeof(int32_t)));
      if (!*ids) throw std::bad_alloc();
      for (size_t i = 0; i < out.size(); ++i) (*ids)[i] = out[i];
    }
    *n = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_err(err, std::string("exception while encoding: ") + e.what());
  } catch (...) {
    set_err(err, "unknown exception while encoding");
  }
  return 1;
}

LAWCAT_SPM_API int lawcat_spm_decode(const lawcat_spm* h, const int32_t* ids, size_t n,
                                     char** out, size_t* out_len, char** err) {
  if (err) *err = nullptr;
  *out = nullptr;
  *out_len = 0;
  try {
    const int size = h->sp.GetPieceSize();
    std::vector<int> v(n);
    for (size_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= size) {
        set_err(err, "id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                         " is outside the vocabulary [0, " + std::to_string(size) + ")");
        return 1;
      }
      v[i] = ids[i];
    }
    std::string text;
    auto status = h->sp.Decode(v, &text);
    if (!status.ok()) {
      set_err(err, status.ToString());
      return 1;
    }
    *out = dup_string(text);
    if (!*out) throw std::bad_alloc();
    *out_len = text.size();
    return 0;
  } catch (const std::exception& e) {
    set_err(err, std::string("exception while decoding: ") + e.what());
  } catch (...) {
    set_err(err, "unknown exception while decoding");
  }
  return 1;
}

LAWCAT_SPM_API int32_t lawcat_spm_vocab_size(const lawcat_spm* h) { return h->sp.GetPieceSize(); }
LAWCAT_SPM_API int32_t lawcat_spm_bos_id(const lawcat_spm* h) { return h->sp.bos_id(); }
LAWCAT_SPM_API int32_t lawcat_spm_eos_id(const lawcat_spm* h) { return h->sp.eos_id(); }
LAWCAT_SPM_API int32_t lawcat_spm_unk_id(const lawcat_spm* h) { return h->sp.unk_id(); }
LAWCAT_SPM_API int32_t lawcat_spm_pad_id(const lawcat_spm* h) { return h->sp.pad_id(); }

LAWCAT_SPM_API const char* lawcat_spm_id_to_piece(const lawcat_spm* h, int32_t id, size_t* len) {
  if (id < 0 || id >= h->sp.GetPieceSize()) return nullptr;
  const std::string& p = h->sp.IdToPiece(id);
  if (len) *len = p.size();
  return p.c_str();
}

LAWCAT_SPM_API int32_t lawcat_spm_piece_to_id(const lawcat_spm* h, const char* piece, size_t len) {
  try {
    absl::string_view s(piece, len);
    int id = h->sp.PieceToId(s);
    // SentencePiece answers unk_id for pieces it does not know.
    if (id == h->sp.unk_id() && h->sp.IdToPiece(id) != std::string(s)) return -1;
    return id;
  } catch (...) {
    return -1;
  }
}

LAWCAT_SPM_API int32_t lawcat_spm_piece_kind(const lawcat_spm* h, int32_t id) {
  if (id < 0 || id >= h->sp.GetPieceSize()) return -1;
  if (h->sp.IsUnknown(id)) return LAWCAT_SPM_UNKNOWN;
  if (h->sp.IsControl(id)) return LAWCAT_SPM_CONTROL;
  if (h->sp.IsByte(id)) return LAWCAT_SPM_BYTE;
  if (h->sp.IsUnused(id)) return LAWCAT_SPM_UNUSED;
  return LAWCAT_SPM_NORMAL;
}

LAWCAT_SPM_API void lawcat_spm_free_ids(int32_t* ids) { std::free(ids); }
LAWCAT_SPM_API void lawcat_spm_free_string(char* s) { std::free(s); }
