// Decode state: what a model carries from one forward call to the next when it
// generates token by token. One LayerState per decoder layer (its token mixer
// decides what that is: a KV cache for softmax attention, (S, z) plus conv
// tails for LAWCAT) and the number of positions consumed so far.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace lawcat::model {

// Per-layer state of a token mixer. Created by TokenMixer::make_state and
// handed back to the same mixer through MixerContext::state.
class LayerState {
 public:
  virtual ~LayerState() = default;
  // Bytes of device memory held (0 before the first forward).
  virtual int64_t memory_bytes() const = 0;
};

// Softmax attention's state: keys and values of the positions a later query can see.
// Stored in a buffer of `capacity` positions that doubles when full, so appending one
// token is amortized O(1); memory grows linearly with T.
// A sliding-window layer's cache (window W > 0) is bounded: each append first drops the
// positions no later query sees (all but the last W - 1, as transformers'
// DynamicSlidingWindowLayer), so between appends it holds at most W - 1 + the last append's T
// positions (W while decoding one token at a time), in a buffer of max(64, 2W, W - 1 + T)
// positions that is compacted about once every W tokens (one copy of W - 1 positions).
// The keys it returns are the kept ones followed by the new ones, in order: the window mask
// over them (causal_softmax_attention, query i of T sees i - W < j) is the same as over the
// unbounded cache, since it depends only on distances.
class KVCache : public LayerState {
 public:
  KVCache() = default;
  explicit KVCache(int64_t window);  // window 0 = keep everything
  // Appends k, v [B, Hkv, T, D]; returns views of the keys and values held,
  // [B, Hkv, length, D] each (valid until the next append): every position so far, or with a
  // window the last min(seen, W - 1) before these T, then these T.
  std::pair<at::Tensor, at::Tensor> append(const at::Tensor& k, const at::Tensor& v);
  // Appends the keys' validity [B, T] bool (undefined = all real) with the same T as the last
  // append; returns the validity of every held key [B, length], undefined while no padded
  // batch was ever appended (then every key is real).
  at::Tensor append_valid(const at::Tensor& valid, int64_t batch, int64_t T);
  int64_t length() const { return length_; }  // positions held (those the last append returned)
  int64_t seen() const { return seen_; }      // positions appended in all
  int64_t window() const { return window_; }
  int64_t capacity() const { return k_.defined() ? k_.size(2) : 0; }
  int64_t memory_bytes() const override;
  bool padded() const { return valid_.defined(); }
  // Views of the held keys and values, [B, Hkv, length, D] each (undefined before the first append).
  std::pair<at::Tensor, at::Tensor> held() const;

 private:
  at::Tensor k_, v_;  // [B, Hkv, capacity, D]; held positions are [start_, start_ + length_)
  at::Tensor valid_;  // [B, length] bool, only for left-padded batches
  int64_t window_ = 0;
  int64_t start_ = 0, length_ = 0, seen_ = 0;
};

// Softmax attention's state for a step captured in a CUDA graph (bench/graph_decode.h): keys and
// values in a buffer of fixed `capacity` positions, written at the position held on the device
// (DecodeState::device_position), so the step's shapes and addresses never change. Each query
// attends over the whole buffer through a mask of the positions written so far (the ones after
// it are zeros and masked out). Made from a KVCache by make_kv_caches_static.
class StaticKVCache : public LayerState {
 public:
  // Copies the held k, v [B, Hkv, L, D] into a buffer of capacity >= L positions; `position`
  // is an int64 [1] tensor on k's device holding the next position (shared, not copied).
  StaticKVCache(const at::Tensor& k, const at::Tensor& v, int64_t capacity, const at::Tensor& position);
  // Writes k, v [B, Hkv, 1, D] at the device position; returns the whole buffers.
  std::pair<at::Tensor, at::Tensor> write(const at::Tensor& k, const at::Tensor& v);
  // The mask [1, capacity] of the keys the query at the device position may see (positions <= it),
  // for attention that cannot read the position itself.
  at::Tensor visible() const { return slots_ <= position_; }
  int64_t capacity() const { return k_.size(2); }
  const at::Tensor& position() const { return position_; }  // the position written last by write()
  int64_t memory_bytes() const override;

 private:
  at::Tensor k_, v_;      // [B, Hkv, capacity, D]
  at::Tensor slots_;      // [1, capacity] int64: 0 .. capacity - 1
  at::Tensor position_;   // [1] int64, the DecodeState's device_position
};

// State of a whole model: one LayerState per layer plus the position offset.
struct DecodeState {
  std::vector<std::unique_ptr<LayerState>> layers;
  int64_t batch = 1;
  int64_t position = 0;  // tokens consumed so far (the next token's position)
  // Left pads per row [B] int64 (set by a padded prefill; undefined = none): row b's token at
  // index t has position t - pads[b], so each row's positions start at 0 at its first real token.
  at::Tensor pads;
  // The next token's position as an int64 [1] tensor on the model's device, defined once
  // make_kv_caches_static made the state capturable: the model then takes RoPE's position from it
  // and advances it on the device, so a CUDA graph of one step stays right when replayed.
  at::Tensor device_position;

  int64_t memory_bytes() const {
    int64_t n = 0;
    for (const auto& l : layers) n += l ? l->memory_bytes() : 0;
    return n;
  }
};

// Turns every softmax layer's KVCache of `state` into a StaticKVCache of `capacity` positions and
// sets state.device_position (on the caches' device); other layer states are left as they are.
// Throws (naming the layer) for a sliding-window or empty cache, a left-padded batch, a capacity
// below what is held, or a state without KV caches; a refused state is left unchanged.
void make_kv_caches_static(DecodeState& state, int64_t capacity);

}  // namespace lawcat::model
