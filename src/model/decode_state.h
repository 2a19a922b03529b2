// Decode state: what a model carries from one forward call to the next when it
// generates token by token. One LayerState per decoder layer (its token mixer
// decides what that is: a KV cache for softmax attention, (S, z) plus conv
// tails for LAWCAT) and the number of positions consumed so far.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
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

 private:
  at::Tensor k_, v_;  // [B, Hkv, capacity, D]; held positions are [start_, start_ + length_)
  at::Tensor valid_;  // [B, length] bool, only for left-padded batches
  int64_t window_ = 0;
  int64_t start_ = 0, length_ = 0, seen_ = 0;
};

// State of a whole model: one LayerState per layer plus the position offset.
struct DecodeState {
  std::vector<std::unique_ptr<LayerState>> layers;
  int64_t batch = 1;
  int64_t position = 0;  // tokens consumed so far (the next token's position)
  // Left pads per row [B] int64 (set by a padded prefill; undefined = none): row b's token at
  // index t has position t - pads[b], so each row's positions start at 0 at its first real token.
  at::Tensor pads;

  int64_t memory_bytes() const {
    int64_t n = 0;
    for (const auto& l : layers) n += l ? l->memory_bytes() : 0;
    return n;
  }
};

}  // namespace lawcat::model
