// Tokenizer interface. The implementation is chosen from what a checkpoint
// directory holds: tokenizer.json (byte-level BPE, Llama 3 / SmolLM / Qwen2),
// tokenizer.model (SentencePiece: Llama 2 / Mistral / TinyLlama), tokenizer.bin (llama2.c).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace lawcat::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text -> ids. Adds BOS first when add_bos (and the tokenizer has one), EOS last when add_eos.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_bos = false,
                                      bool add_eos = false) const = 0;
  // Ids -> text. Special tokens (BOS/EOS/pad) are dropped.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  // Text of one token as it continues a stream (for streaming generation output);
  // `prev` is the previous token id or -1.
  virtual std::string decode_piece(int64_t prev, int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int64_t eos_id() const = 0;  // -1 when the tokenizer has none
  virtual std::string kind() const = 0;  // "sentencepiece", "bpe", "llama2c"

  // Extensions (with defaults so test doubles need not implement them).
  // Whether the model's own pipeline adds BOS (HF add_special_tokens=True: the
  // tokenizer.json post-processor template, tokenizer_config.json add_bos_token).
  virtual bool add_bos_by_default() const { return bos_id() >= 0; }
  // Vocabulary entry of `id` as stored (e.g. "▁the" (SentencePiece), "Ġthe" (byte-level), "<0x0A>",
  // "<|eot_id|>"); empty when out of range.
  virtual std::string id_to_piece(int64_t id) const { return {}; }
  // Id of a vocabulary entry or added/special token (exact match), -1 when absent.
  virtual int64_t piece_to_id(const std::string& piece) const { return -1; }
  // True for ids that decode() drops (BOS, EOS, pad, control / special added tokens).
  virtual bool is_special(int64_t id) const { return id >= 0 && (id == bos_id() || id == eos_id()); }
};

// Picks the tokenizer from the files in `model_dir` (tokenizer.json, then
// tokenizer.model, then tokenizer.bin). Throws DataError naming the directory
// and what it looked for when none is there, or the file and the problem when
// the file is corrupt.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);
// The file load_tokenizer reads in `model_dir` (same choice and errors).
std::filesystem::path tokenizer_file(const std::filesystem::path& model_dir);

// Loaders for one specific file (throw DataError naming the file).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file);
std::unique_ptr<Tokenizer> load_bpe_json(const std::filesystem::path& tokenizer_json);
std::unique_ptr<Tokenizer> load_llama2c(const std::filesystem::path& tokenizer_bin);

}  // namespace lawcat::text
