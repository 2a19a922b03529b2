// Packing a token stream into fixed-length examples, the train / validation
// split, and a deterministic, resumable batch loader.
//
// An example is seq_len + 1 consecutive tokens of the stream (inputs = the
// first seq_len, targets = the last seq_len); example i starts at i * seq_len,
// so consecutive examples share one token and none is wasted. Documents run
// across example boundaries (BOS / EOS mark where they change).
//
// Validation: whole documents are held out (chosen by a seeded shuffle of the
// document order), at least one example's worth, so no validation text is
// ever trained on; or a separate validation corpus.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dataset/tokenized.h"

namespace lawcat::dataset {

class PackedDataset {
 public:
  PackedDataset() = default;
  PackedDataset(std::vector<int32_t> stream, int64_t seq_len);
  int64_t size() const { return n_; }           // number of examples
  int64_t seq_len() const { return seq_len_; }
  int64_t stream_tokens() const { return static_cast<int64_t>(stream_.size()); }
  // Example i: [seq_len + 1] int64 (CPU).
  at::Tensor get(int64_t i) const;
  // Examples idx: [n, seq_len + 1] int64 (CPU).
  at::Tensor batch(const std::vector<int64_t>& idx) const;

 private:
  std::vector<int32_t> stream_;
  int64_t seq_len_ = 0, n_ = 0;
};

struct DataSplits {
  PackedDataset train, validation;
  int64_t train_docs = 0, validation_docs = 0;
};

// `validation` may be null: then documents of `train` are held out (val_fraction
// of the tokens, at least one example). DataError when either split is too
// short for one example, naming the files, the token count and what is needed.
DataSplits make_splits(const TokenizedCorpus& train, const TokenizedCorpus* validation, int64_t seq_len,
                       double val_fraction, uint64_t seed);

// Seeded Fisher-Yates permutation of 0..n-1 (portable: no std::shuffle, whose
// sequence is implementation-defined).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// Where a loader is (saved in checkpoints).
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t index = 0;     // next position in this epoch's permutation
  int64_t consumed = 0;  // examples drawn in total
};

// Draws batches of examples in a seeded random order, reshuffled every epoch.
// Data parallel: every rank draws the same global batch of world * batch_size
// examples and keeps its own slice, so ranks never overlap and the union is
// the single-process batch.
class DataLoader {
 public:
  DataLoader(const PackedDataset& data, int64_t batch_size, uint64_t seed, int rank = 0, int world = 1);
  at::Tensor next();  // [batch_size, seq_len + 1] int64
  LoaderPosition position() const { return pos_; }
  void set_position(const LoaderPosition& p);
  int64_t batch_size() const { return batch_size_; }

 private:
  int64_t draw();
  const PackedDataset& data_;
  int64_t batch_size_;
  uint64_t seed_;
  int rank_, world_;
  LoaderPosition pos_;
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
};

// The fixed validation batches: the first min(n_batches * batch_size, size)
// examples in order, [batch_size, seq_len + 1] each (the last may be smaller).
std::vector<at::Tensor> validation_batches(const PackedDataset& data, int64_t batch_size, int64_t n_batches);

}  // namespace lawcat::dataset
