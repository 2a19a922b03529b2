#include "eval/perplexity.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <sstream>

#include "dataset/corpus.h"
#include "eval/generate.h"
#include "eval/long_ppl.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/progress.h"

namespace lawcat::eval {

double PerplexityResult::perplexity() const { return std::exp(mean_nll()); }

namespace {
bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\f\v") == std::string::npos;
}
std::string trim(const std::string& s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}
}  // namespace

std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  std::string current, line;
  std::istringstream in(text);
  auto flush = [&] {
    std::string d = trim(current);
    if (!d.empty()) docs.push_back(std::move(d));
    current.clear();
  };
  while (std::getline(in, line)) {
    if (is_blank(line)) {
      flush();
    } else {
      current += line;
      current += '\n';
    }
  }
  flush();
  return docs;
}

PerplexityResult score_documents(model::LlamaForCausalLMImpl& model,
                                 const std::vector<std::vector<int64_t>>& documents,
                                 const PerplexityOptions& options) {
  torch::NoGradGuard no_grad;
  PerplexityResult r;
  r.ctx = options.ctx > 0 ? options.ctx : model.max_positions();
  LAWCAT_CHECK(r.ctx > 0, ConfigError, "perplexity: ctx must be positive");
  const int64_t chunk = std::max<int64_t>(1, options.logits_chunk);
  int64_t total = 0;
  for (const auto& d : documents) total += std::max<int64_t>(0, static_cast<int64_t>(d.size()) - 1);
  auto t0 = std::chrono::steady_clock::now();
  std::optional<Progress> progress;
  if (options.progress) progress.emplace("perplexity", total, "tok");
  const auto ids_opts = at::TensorOptions().dtype(at::kLong);
  for (const auto& doc : documents) {
    const int64_t n = static_cast<int64_t>(doc.size());
    if (n < 2) continue;
    ++r.documents;
    at::Tensor all = at::tensor(doc, ids_opts);  // [n]
    for (int64_t s = 0; s < n - 1; s += r.ctx) {
      const int64_t len = std::min(r.ctx, n - 1 - s);
      at::Tensor input = all.narrow(0, s, len).unsqueeze(0);                            // [1, len]
      at::Tensor target = all.narrow(0, s + 1, len).to(model.device());                 // [len]
      at::Tensor hidden = model.hidden_states(input).squeeze(0);                        // [len, D]
      double nll = 0;
      for (int64_t c = 0; c < len; c += chunk) {
        const int64_t m = std::min(chunk, len - c);
        at::Tensor logits = model.logits(hidden.narrow(0, c, m)).to(at::kFloat);         // [m, V]
        at::Tensor lp = logits.log_softmax(-1);
        nll -= lp.gather(1, target.narrow(0, c, m).unsqueeze(1)).sum().item<double>();
      }
      r.nll_sum += nll;
      r.tokens += len;
      ++r.windows;
      if (progress) {
        progress->set_status("nll " + std::to_string(r.mean_nll()).substr(0, 6));
        progress->advance(len);
      }
    }
  }
  if (progress) progress->finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

PerplexityResult perplexity_of_file(model::LlamaForCausalLMImpl& model, const text::Tokenizer& tokenizer,
                                    const std::filesystem::path& text_file, const PerplexityOptions& options) {
  LAWCAT_CHECK(std::filesystem::exists(text_file), DataError,
               "text file " << text_file.string() << " does not exist");
  dataset::CorpusOptions co;  // JSONL, Alpaca, compressed
  co.text_field = options.text_field;
  std::vector<std::string> docs = is_plain_text_file(text_file)
                                      ? split_documents(dataset::read_text_checked(text_file))
                                      : dataset::read_documents(text_file, co);
  LAWCAT_CHECK(!docs.empty(), DataError,
               "text file " << text_file.string() << " has no text (expected documents separated by blank lines)");
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(docs.size());
  for (const auto& d : docs) {
    // BOS when the tokenizer has one; without (Qwen2/Qwen3: bos_token null) the document start
    // generate and eval use (eval/generate.h) as the context of the first token.
    std::vector<int64_t> t = tokenizer.encode(d, /*add_bos=*/true);
    if (tokenizer.bos_id() < 0) {
      const int64_t lead = document_start_id(model, tokenizer);
      if (lead >= 0) t.insert(t.begin(), lead);
    }
    ids.push_back(std::move(t));
  }
  return score_documents(model, ids, options);
}

}  // namespace lawcat::eval
