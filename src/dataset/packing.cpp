#include "dataset/packing.h"

#include <cmath>

#include "util/error.h"
#include "util/log.h"

namespace lawcat::dataset {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
int64_t examples_in(int64_t tokens, int64_t seq_len) { return tokens > seq_len ? (tokens - 1) / seq_len : 0; }
}  // namespace

PackedDataset::PackedDataset(std::vector<int32_t> stream, int64_t seq_len)
    : stream_(std::move(stream)), seq_len_(seq_len), n_(examples_in(static_cast<int64_t>(stream_.size()), seq_len)) {}

at::Tensor PackedDataset::get(int64_t i) const {
  TORCH_CHECK(i >= 0 && i < n_, "PackedDataset: example ", i, " out of range [0, ", n_, ")");
  at::Tensor t = at::empty({seq_len_ + 1}, at::kLong);
  int64_t* out = t.data_ptr<int64_t>();
  const int32_t* src = stream_.data() + i * seq_len_;
  for (int64_t k = 0; k <= seq_len_; ++k) out[k] = src[k];
  return t;
}

at::Tensor PackedDataset::batch(const std::vector<int64_t>& idx) const {
  std::vector<at::Tensor> rows;
  rows.reserve(idx.size());
  for (int64_t i : idx) rows.push_back(get(i));
  return at::stack(rows);
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = seed ^ 0x6c61776361740000ULL;  // "lawcat"
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

DataSplits make_splits(const TokenizedCorpus& train, const TokenizedCorpus* validation, int64_t seq_len,
                       double val_fraction, uint64_t seed) {
  const int64_t need = seq_len + 1;
  DataSplits s;
  std::vector<int32_t> train_stream, val_stream;
  if (validation) {
    train_stream = train.tokens;
    val_stream = validation->tokens;
    s.train_docs = train.num_docs();
    s.validation_docs = validation->num_docs();
    LAWCAT_CHECK(static_cast<int64_t>(val_stream.size()) >= need, DataError,
                 "validation corpus too short: " << validation->describe_files() << " give "
                                                 << val_stream.size() << " tokens; need at least " << need
                                                 << " (one example of data.seq_len " << seq_len << " + 1)");
  } else {
    const int64_t total = train.num_tokens();
    const int64_t want_val = std::max<int64_t>(need, static_cast<int64_t>(std::llround(val_fraction * total)));
    LAWCAT_CHECK(total >= 2 * need, DataError,
                 "corpus too short: " << train.describe_files() << " give " << total
                                      << " tokens; need at least " << 2 * need << " (one training and one validation example of data.seq_len "
                                      << seq_len << " + 1 tokens). Add text or lower data.seq_len");
    std::vector<char> held(train.num_docs(), 0);
    int64_t got = 0;
    if (train.num_docs() >= 2) {
      for (int64_t d : seeded_permutation(train.num_docs(), seed ^ 0x76616cULL)) {
        if (got >= want_val) break;
        // Keep at least one example's worth of training text.
        const int64_t len = train.doc_offsets[d + 1] - train.doc_offsets[d];
        if (total - got - len < need) continue;
        held[d] = 1;
        got += len;
      }
    }
    if (got >= need) {
      for (int64_t d = 0; d < train.num_docs(); ++d) {
        auto& dst = held[d] ? val_stream : train_stream;
        dst.insert(dst.end(), train.tokens.begin() + train.doc_offsets[d], train.tokens.begin() + train.doc_offsets[d + 1]);
        (held[d] ? s.validation_docs : s.train_docs) += 1;
      }
    } else {
      // Too few (or too long) documents to hold whole ones out: the stream's tail.
      const int64_t cut = total - want_val;
      train_stream.assign(train.tokens.begin(), train.tokens.begin() + cut);
      val_stream.assign(train.tokens.begin() + cut, train.tokens.end());
      s.train_docs = train.num_docs();
      s.validation_docs = 0;
      log::warn("validation split: documents are too few or too long to hold whole ones out; using the last ",
                want_val, " tokens of the stream");
    }
  }
  LAWCAT_CHECK(static_cast<int64_t>(train_stream.size()) >= need, DataError,
               "training corpus too short: " << train.describe_files() << " leave " << train_stream.size()
                                             << " tokens for training; need at least " << need
                                             << " (one example of data.seq_len " << seq_len << " + 1)");
  s.train = PackedDataset(std::move(train_stream), seq_len);
  s.validation = PackedDataset(std::move(val_stream), seq_len);
  return s;
}

DataLoader::DataLoader(const PackedDataset& data, int64_t batch_size, uint64_t seed, int rank, int world)
    : data_(data), batch_size_(batch_size), seed_(seed), rank_(rank), world_(world) {
  TORCH_CHECK(data.size() > 0, "DataLoader: empty dataset");
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "DataLoader: bad rank ", rank, " / world ", world);
}

void DataLoader::set_position(const LoaderPosition& p) {
  TORCH_CHECK(p.epoch >= 0 && p.index >= 0 && p.index <= data_.size(),
              "DataLoader: position (epoch ", p.epoch, ", index ", p.index, ") does not fit a dataset of ",
              data_.size(), " examples");
  pos_ = p;
}

int64_t DataLoader::draw() {
  if (pos_.index >= data_.size()) {
    ++pos_.epoch;
    pos_.index = 0;
  }
  if (perm_epoch_ != pos_.epoch) {
    perm_ = seeded_permutation(data_.size(), seed_ * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(pos_.epoch));
    perm_epoch_ = pos_.epoch;
  }
  ++pos_.consumed;
  return perm_[pos_.index++];
}

at::Tensor DataLoader::next() {
  std::vector<int64_t> mine;
  for (int r = 0; r < world_; ++r)
    for (int64_t b = 0; b < batch_size_; ++b) {
      int64_t i = draw();
      if (r == rank_) mine.push_back(i);
    }
  return data_.batch(mine);
}

std::vector<at::Tensor> validation_batches(const PackedDataset& data, int64_t batch_size, int64_t n_batches) {
  std::vector<at::Tensor> out;
  const int64_t n = std::min(data.size(), n_batches * batch_size);
  for (int64_t i = 0; i < n; i += batch_size) {
    std::vector<int64_t> idx;
    for (int64_t k = i; k < std::min(n, i + batch_size); ++k) idx.push_back(k);
    out.push_back(data.batch(idx));
  }
  return out;
}

}  // namespace lawcat::dataset
