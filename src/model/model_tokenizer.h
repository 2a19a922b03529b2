// A model directory's tokenizer, checked against its config.json: a tokenizer
// that does not belong to the model fails here, naming both files, instead of
// as an index error at the first forward (ids beyond the embedding) or as
// silent garbage (a truncated tokenizer.bin that still parses).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "io/hf_config.h"
#include "text/tokenizer.h"

namespace lawcat::model {

// Throws DataError naming `tokenizer_file` and `config_file` when
//  * the tokenizer has more tokens than the model's vocab_size (its ids would
//    index past the embedding), or
//  * it has fewer than half of them (a truncated file or another model's
//    tokenizer; models pad vocab_size by a little, never by half).
void check_tokenizer_vocab(int64_t tokenizer_vocab, const std::filesystem::path& tokenizer_file,
                           int64_t model_vocab, const std::filesystem::path& config_file);

// text::load_tokenizer(model_dir), then check_tokenizer_vocab against model_dir/config.json.
std::unique_ptr<text::Tokenizer> load_model_tokenizer(const std::filesystem::path& model_dir);

}  // namespace lawcat::model
