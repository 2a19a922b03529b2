// C interface of liblawcat_spm_shim.so, the one place that touches Debian's
// libsentencepiece. Why a separate shared object: libsentencepiece links its own
// protobuf, LibTorch carries another; both in one link namespace crash the process.
// text/sentencepiece.cpp loads this object with dlmopen(LM_ID_NEWLM) so it (and
// sentencepiece, protobuf, its own libstdc++) live in a separate namespace, and
// reaches it only through these functions (looked up with dlsym).
//
// Rules of the interface: plain C, POD types only, no exception ever crosses it.
// Memory the shim allocates (ids, strings, error texts) belongs to the shim's
// malloc (another namespace's libc): release it with the matching lawcat_spm_free_*.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bumped on any incompatible change; the loader refuses a shim of another version.
#define LAWCAT_SPM_SHIM_ABI 1

typedef struct lawcat_spm lawcat_spm;  // opaque: one loaded SentencePiece model

// Piece kinds returned by lawcat_spm_piece_kind.
enum {
  LAWCAT_SPM_NORMAL = 0,
  LAWCAT_SPM_UNKNOWN = 1,
  LAWCAT_SPM_CONTROL = 2,  // <s>, </s>: decode to nothing
  LAWCAT_SPM_BYTE = 3,     // <0xNN> byte fallback
  LAWCAT_SPM_UNUSED = 4,
};

int lawcat_spm_abi_version(void);
// Loads a tokenizer.model. Returns NULL and sets *err (free with lawcat_spm_free_string) on failure.
lawcat_spm* lawcat_spm_load(const char* path, char** err);
void lawcat_spm_free(lawcat_spm* h);
// text[0..len) -> *ids[0..*n) (free with lawcat_spm_free_ids). Returns 0 on success,
// nonzero with *err set on failure.
int lawcat_spm_encode(const lawcat_spm* h, const char* text, size_t len, int32_t** ids,
                      size_t* n, char** err);
// ids -> *out[0..*out_len) (NUL-terminated too; free with lawcat_spm_free_string).
int lawcat_spm_decode(const lawcat_spm* h, const int32_t* ids, size_t n, char** out,
                      size_t* out_len, char** err);
int32_t lawcat_spm_vocab_size(const lawcat_spm* h);
int32_t lawcat_spm_bos_id(const lawcat_spm* h);  // -1 when the model has none
int32_t lawcat_spm_eos_id(const lawcat_spm* h);
int32_t lawcat_spm_unk_id(const lawcat_spm* h);
int32_t lawcat_spm_pad_id(const lawcat_spm* h);
// Piece text of `id` (valid while the handle lives), NULL when out of range.
const char* lawcat_spm_id_to_piece(const lawcat_spm* h, int32_t id, size_t* len);
// Id of a piece, or -1 when the vocabulary does not have it.
int32_t lawcat_spm_piece_to_id(const lawcat_spm* h, const char* piece, size_t len);
int32_t lawcat_spm_piece_kind(const lawcat_spm* h, int32_t id);
void lawcat_spm_free_ids(int32_t* ids);
void lawcat_spm_free_string(char* s);

#ifdef __cplusplus
}  // extern "C"
#endif
