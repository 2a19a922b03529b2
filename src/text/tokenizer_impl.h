// Internals shared by the tokenizer implementations (not part of the public API):
// a base class holding BOS/EOS, so load_tokenizer can apply tokenizer_config.json.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "text/tokenizer.h"

namespace lawcat::text::detail {

class TokenizerBase : public Tokenizer {
 public:
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  bool add_bos_by_default() const override { return add_bos_default_ && bos_ >= 0; }
  bool is_special(int64_t id) const override {
    return id >= 0 && (id == bos_ || id == eos_ || is_control(id));
  }

  // Overrides from tokenizer_config.json / special_tokens_map.json.
  void set_bos(int64_t id) { bos_ = id; }
  void set_eos(int64_t id) { eos_ = id; }
  void set_add_bos_default(bool on) { add_bos_default_ = on; }

 protected:
  // Model-specific special ids other than BOS/EOS (control pieces, special added tokens).
  virtual bool is_control(int64_t id) const { return false; }
  // [BOS] body [EOS] as requested (BOS/EOS only when the tokenizer has them).
  std::vector<int64_t> wrap(const std::vector<int64_t>& body, bool add_bos, bool add_eos) const {
    std::vector<int64_t> out;
    out.reserve(body.size() + 2);
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    out.insert(out.end(), body.begin(), body.end());
    if (add_eos && eos_ >= 0) out.push_back(eos_);
    return out;
  }

  int64_t bos_ = -1;
  int64_t eos_ = -1;
  bool add_bos_default_ = true;
};

std::unique_ptr<TokenizerBase> make_sentencepiece(const std::filesystem::path& model_file);
std::unique_ptr<TokenizerBase> make_bpe_json(const std::filesystem::path& tokenizer_json);
std::unique_ptr<TokenizerBase> make_llama2c(const std::filesystem::path& tokenizer_bin);

}  // namespace lawcat::text::detail
