// A small BPE trainer that writes a llama2.c tokenizer.bin (the format
// text/llama2c_tokenizer reads): the fallback tokenizer when a teacher is
// trained from scratch and no tokenizer is on the machine.
//
// Vocabulary: 0 <unk>, 1 BOS, 2 EOS, 3..258 byte fallback <0x00>..<0xFF>, then
// the most frequent characters of the corpus, then merges learned by classic
// word-level BPE (words = a leading space plus a run of non-space characters,
// the way llama2.c's encoder sees text after its dummy " " prefix), scored by
// rank so the encoder's highest-score-first merging replays them in order.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lawcat::dataset {

struct BpeTrainOptions {
  int64_t vocab_size = 512;   // total, including the 259 fixed entries
  int64_t max_chars = 128;    // at most this many single-character pieces
  int64_t min_pair_count = 2; // stop merging when the best pair is rarer
};

// Learns the vocabulary from `documents` and writes `out` atomically.
// Returns the number of pieces written.
int64_t train_llama2c_tokenizer(const std::vector<std::string>& documents, const std::filesystem::path& out,
                                const BpeTrainOptions& options = {});

}  // namespace lawcat::dataset
