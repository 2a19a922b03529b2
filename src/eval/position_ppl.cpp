#include "eval/position_ppl.h"

#include <ATen/ATen.h>

#include <chrono>

#include "dataset/corpus.h"
#include "util/error.h"

namespace lawcat::eval {

PositionNll position_nll(model::LlamaForCausalLMImpl& model, const std::vector<int64_t>& ids, int64_t bucket,
                         int64_t logits_chunk) {
  LAWCAT_CHECK(ids.size() >= 2, ConfigError, "position ppl: a document needs at least 2 tokens");
  LAWCAT_CHECK(bucket > 0, ConfigError, "position ppl: bucket must be > 0, got " << bucket);
  at::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = static_cast<int64_t>(ids.size()) - 1;  // predicted tokens
  const int64_t buckets = (n + bucket - 1) / bucket;
  PositionNll r;
  r.nll_sum.assign(static_cast<size_t>(buckets), 0.0);
  r.tokens.assign(static_cast<size_t>(buckets), 0);
  at::Tensor all = at::tensor(ids, at::TensorOptions().dtype(at::kLong));
  at::Tensor input = all.narrow(0, 0, n).unsqueeze(0);             // [1, n]
  at::Tensor target = all.narrow(0, 1, n).to(model.device());      // [n]
  at::Tensor hidden = model.hidden_states(input).squeeze(0);       // [n, D]
  std::vector<at::Tensor> nll;
  for (int64_t c = 0; c < n; c += logits_chunk) {
    const int64_t m = std::min(logits_chunk, n - c);
    at::Tensor lp = model.logits(hidden.narrow(0, c, m)).to(at::kFloat).log_softmax(-1);  // [m, V]
    nll.push_back(-lp.gather(1, target.narrow(0, c, m).unsqueeze(1)).squeeze(1).to(at::kDouble));
  }
  at::Tensor per_token = at::cat(nll).cpu().contiguous();  // [n]
  const double* p = per_token.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    r.nll_sum[static_cast<size_t>(i / bucket)] += p[i];
    r.tokens[static_cast<size_t>(i / bucket)] += 1;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<std::vector<int64_t>> long_documents(const text::Tokenizer& tokenizer,
                                                 const std::filesystem::path& text_file, int64_t length,
                                                 int64_t bos, int64_t max_documents, const std::string& text_field) {
  LAWCAT_CHECK(length >= 2, ConfigError, "position ppl: length must be >= 2, got " << length);
  LAWCAT_CHECK(bos >= 0, DataError,
               "position ppl: the model has no BOS or EOS token (tokenizer or config.json) to start documents with");
  dataset::CorpusOptions co;
  co.text_field = text_field;
  std::vector<std::string> docs = dataset::read_documents(text_file, co);
  std::vector<std::vector<int64_t>> out;
  int64_t longest = 0;
  for (const auto& d : docs) {
    if (max_documents > 0 && static_cast<int64_t>(out.size()) >= max_documents) break;
    std::vector<int64_t> ids = tokenizer.encode(d, /*add_bos=*/false);
    longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()) + 1);
    if (static_cast<int64_t>(ids.size()) + 1 < length) continue;
    ids.resize(static_cast<size_t>(length - 1));
    ids.insert(ids.begin(), bos);
    out.push_back(std::move(ids));
  }
  LAWCAT_CHECK(!out.empty(), DataError,
               text_file.string() << ": no document has " << length << " tokens (the longest has " << longest
                                  << " with BOS); use a shorter --lengths");
  return out;
}

}  // namespace lawcat::eval
