#include "model/decode_state.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

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

std::pair<at::Tensor, at::Tensor> KVCache::held() const {
  if (!k_.defined()) return {};
  return {k_.narrow(2, start_, length_), v_.narrow(2, start_, length_)};
}

StaticKVCache::StaticKVCache(const at::Tensor& k, const at::Tensor& v, int64_t capacity, const at::Tensor& position)
    : position_(position) {
  TORCH_CHECK(k.dim() == 4 && k.sizes() == v.sizes() && capacity >= k.size(2), "StaticKVCache: k ", k.sizes(),
              ", v ", v.sizes(), " must be [B, Hkv, L, D] with L <= capacity ", capacity);
  TORCH_CHECK(position.defined() && position.numel() == 1 && position.scalar_type() == at::kLong &&
                  position.device() == k.device(),
              "StaticKVCache: position must be an int64 [1] tensor on ", k.device());
  k_ = at::zeros({k.size(0), k.size(1), capacity, k.size(3)}, k.options());
  v_ = at::zeros_like(k_);
  k_.narrow(2, 0, k.size(2)).copy_(k);
  v_.narrow(2, 0, v.size(2)).copy_(v);
  slots_ = at::arange(capacity, position.options()).unsqueeze(0);
}

std::pair<at::Tensor, at::Tensor> StaticKVCache::write(const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(k.dim() == 4 && k.sizes() == v.sizes() && k.size(2) == 1 && k.size(0) == k_.size(0) &&
                  k.size(1) == k_.size(1) && k.size(3) == k_.size(3),
              "StaticKVCache::write: k ", k.sizes(), " and v ", v.sizes(), " must be one position of ", k_.sizes());
  // Past the buffer index_copy_ would fault on the device; the caller bounds the steps.
  k_.index_copy_(2, position_, k);
  v_.index_copy_(2, position_, v);
  return {k_, v_};
}

int64_t StaticKVCache::memory_bytes() const { return static_cast<int64_t>(k_.nbytes() + v_.nbytes()); }

void make_kv_caches_static(DecodeState& state, int64_t capacity) {
  TORCH_CHECK(!state.pads.defined(), "make_kv_caches_static: a left-padded batch cannot be made static");
  TORCH_CHECK(capacity >= state.position, "make_kv_caches_static: capacity ", capacity, " is below the ",
              state.position, " positions held");
  // Every cache checked before any is replaced, so a refusal leaves the state as it was.
  std::vector<size_t> softmax_layers;
  for (size_t i = 0; i < state.layers.size(); ++i) {
    auto* cache = dynamic_cast<KVCache*>(state.layers[i].get());
    if (!cache) continue;
    TORCH_CHECK(cache->window() == 0, "make_kv_caches_static: layer ", i, " has a sliding window (", cache->window(),
                "), whose cache drops positions");
    TORCH_CHECK(!cache->padded(), "make_kv_caches_static: layer ", i, " holds a left-padded batch");
    TORCH_CHECK(cache->length() == state.position, "make_kv_caches_static: layer ", i, " holds ", cache->length(),
                " positions, the state is at ", state.position);
    TORCH_CHECK(cache->held().first.defined(), "make_kv_caches_static: layer ", i, " has an empty cache (prefill first)");
    softmax_layers.push_back(i);
  }
  TORCH_CHECK(!softmax_layers.empty(), "make_kv_caches_static: the state has no KV cache");
  const at::Device device = dynamic_cast<KVCache*>(state.layers[softmax_layers[0]].get())->held().first.device();
  at::Tensor position = at::full({1}, state.position, at::TensorOptions().dtype(at::kLong).device(device));
  for (size_t i : softmax_layers) {
    auto [k, v] = dynamic_cast<KVCache*>(state.layers[i].get())->held();
    state.layers[i] = std::make_unique<StaticKVCache>(k, v, capacity, position);
  }
  state.device_position = position;
}

int64_t KVCache::memory_bytes() const {
  if (!k_.defined()) return 0;
  return static_cast<int64_t>(k_.nbytes() + v_.nbytes() + (valid_.defined() ? valid_.nbytes() : 0));
}

}  // namespace lawcat::model
