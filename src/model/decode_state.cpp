#include "model/decode_state.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace lawcat::model {

KVCache::KVCache(int64_t window) : window_(window) {
  TORCH_CHECK(window >= 0, "KVCache: window must be >= 0, got ", window);
}

std::pair<at::Tensor, at::Tensor> KVCache::append(const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(k.dim() == 4 && k.sizes() == v.sizes(), "KVCache::append: k ", k.sizes(), " and v ",
              v.sizes(), " must both be [B, Hkv, T, D]");
  const int64_t T = k.size(2);
  if (k_.defined()) {
    TORCH_CHECK(k.size(0) == k_.size(0) && k.size(1) == k_.size(1) && k.size(3) == k_.size(3) &&
                    k.scalar_type() == k_.scalar_type() && k.device() == k_.device(),
                "KVCache::append: k ", k.sizes(), " does not continue the cache ", k_.sizes());
  }
  if (window_ > 0 && length_ > window_ - 1) {
    // Sliding window: the first query of this append sees only the last W - 1 held positions.
    const int64_t drop = length_ - (window_ - 1);
    start_ += drop;
    length_ -= drop;
    if (valid_.defined()) valid_ = valid_.narrow(1, drop, length_);
  }
  const int64_t need = length_ + T;
  if (start_ + need > capacity()) {
    // Unbounded: grow, at least doubling, at least 64 positions. Windowed: max(64, 2W, need),
    // compacted in place when that is the buffer's size and the move does not overlap.
    const int64_t cap = window_ > 0 ? std::max<int64_t>({64, 2 * window_, need})
                                    : std::max<int64_t>({64, 2 * capacity(), need});
    if (window_ > 0 && cap == capacity() && start_ >= length_) {
      if (length_ > 0) {
        k_.narrow(2, 0, length_).copy_(k_.narrow(2, start_, length_));
        v_.narrow(2, 0, length_).copy_(v_.narrow(2, start_, length_));
      }
    } else {
      at::Tensor nk = at::empty({k.size(0), k.size(1), cap, k.size(3)}, k.options());
      at::Tensor nv = at::empty({v.size(0), v.size(1), cap, v.size(3)}, v.options());
      if (length_ > 0) {
        nk.narrow(2, 0, length_).copy_(k_.narrow(2, start_, length_));
        nv.narrow(2, 0, length_).copy_(v_.narrow(2, start_, length_));
      }
      k_ = nk;
      v_ = nv;
    }
    start_ = 0;
  }
  k_.narrow(2, start_ + length_, T).copy_(k);
  v_.narrow(2, start_ + length_, T).copy_(v);
  length_ += T;
  seen_ += T;
  return {k_.narrow(2, start_, length_), v_.narrow(2, start_, length_)};
}

at::Tensor KVCache::append_valid(const at::Tensor& valid, int64_t batch, int64_t T) {
  if (!valid.defined() && !valid_.defined()) return {};
  TORCH_CHECK(!valid.defined() || (valid.dim() == 2 && valid.size(0) == batch && valid.size(1) == T),
              "KVCache::append_valid: valid must be [B, T] = [", batch, ", ", T, "], got ", valid.sizes());
  const auto opts = at::TensorOptions().dtype(at::kBool).device(k_.device());
  if (!valid_.defined()) valid_ = at::ones({batch, length_ - T}, opts);
  valid_ = at::cat({valid_, valid.defined() ? valid.to(opts) : at::ones({batch, T}, opts)}, 1);
  return valid_;
}

int64_t KVCache::memory_bytes() const {
  if (!k_.defined()) return 0;
  return static_cast<int64_t>(k_.nbytes() + v_.nbytes() + (valid_.defined() ? valid_.nbytes() : 0));
}

}  // namespace lawcat::model
