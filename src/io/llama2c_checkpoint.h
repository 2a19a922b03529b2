// llama2.c checkpoints (karpathy/llama2.c) -> Hugging Face Llama layout.
//
// Two fp32 formats are read:
//  * legacy (v0): 7 int32 header dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//    vocab_size, seq_len (vocab_size < 0: the classifier is NOT shared and
//    follows at the end), then tok_emb[V,D], rms_att[L,D], wq[L,D,D],
//    wk[L,KV,D], wv[L,KV,D], wo[L,D,D], rms_ffn[L,D], w1[L,F,D], w2[L,D,F],
//    w3[L,F,D], rms_final[D], freq_cis_real[seq,hs/2], freq_cis_imag[seq,hs/2],
//    [wcls[V,D]].
//  * version 1: 256-byte header: uint32 magic 0x616b3432 ("ak42"), int32 version 1,
//    the same 7 int32 (vocab_size positive), uint8 shared_classifier, zero padding;
//    then rms_att[L,D], rms_ffn[L,D], rms_final[D], tok_emb, wq, wk, wv, wo, w1,
//    w2, w3, [wcls]; no freq_cis tables.
//  (KV = n_kv_heads * head_size, F = hidden_dim, head_size = dim / n_heads.)
//
// llama2.c rotates adjacent pairs (x[2j], x[2j+1]); HF rotates (x[j], x[j+D/2]).
// The q and k rows are permuted per head as HF's convert_llama_weights_to_hf:
//   w.view(heads, D/2, 2, in).transpose(1, 2).reshape(heads * D, in).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "io/hf_config.h"
#include "io/llama2c_header.h"

namespace lawcat::io {

struct Llama2cModel {
  Llama2cHeader header;
  LlamaConfig config;  // the equivalent HF config
  // HF-named fp32 CPU tensors (q/k rows already permuted to the half-split RoPE layout).
  std::vector<std::pair<std::string, at::Tensor>> tensors;
};

// Reads and validates a llama2.c .bin file (size checked against the header:
// CheckpointError naming the file, expected vs got bytes).
Llama2cModel read_llama2c(const std::filesystem::path& bin);

// q/k row permutation from interleaved-pair to half-split RoPE: w [heads*hd, in].
at::Tensor llama2c_permute_rope_rows(const at::Tensor& w, int64_t heads);

// Checks a tokenizer file against the converted model's config; throws to
// refuse (io cannot parse tokenizers: the caller passes model::check_tokenizer_vocab
// over text::load_llama2c).
using TokenizerCheck =
    std::function<void(const std::filesystem::path& tokenizer_bin, const LlamaConfig& config)>;

// Writes out_dir/config.json, out_dir/model.safetensors and, when
// `tokenizer_bin` is not empty, a copy of it as out_dir/tokenizer.bin.
// Everything is validated first (the checkpoint parsed whole, the tokenizer
// read and passed to `check_tokenizer`), then written into a temporary sibling
// directory that replaces out_dir in one rename (fs::replace_dir): a bad input
// leaves an existing out_dir exactly as it was. An existing out_dir must hold
// only model files (config.json, weights, tokenizer files, source.json): it is
// replaced as a whole, so any other file there is refused, never deleted.
void convert_llama2c(const std::filesystem::path& bin, const std::filesystem::path& tokenizer_bin,
                     const std::filesystem::path& out_dir, const TokenizerCheck& check_tokenizer = {});

}  // namespace lawcat::io
