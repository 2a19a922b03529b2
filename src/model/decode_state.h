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

// Softmax attention's state: keys and values of every position seen so far.
// Stored in a buffer of `capacity` positions that doubles when full, so
// appending one token is amortized O(1); memory grows linearly with T.
class KVCache : public LayerState {
 public:
  // Appends k, v [B, Hkv, T, D]; returns views of all keys and values so far,
  // [B, Hkv, length, D] each (valid until the next append).
  std::pair<at::Tensor, at::Tensor> append(const at::Tensor& k, const at::Tensor& v);
  // Appends the keys' validity [B, T] bool (undefined = all real) with the same T as the last
  // append; returns the validity of every cached key [B, length], undefined while no padded
  // batch was ever appended (then every key is real).
  at::Tensor append_valid(const at::Tensor& valid, int64_t batch, int64_t T);
  int64_t length() const { return length_; }
  int64_t capacity() const { return k_.defined() ? k_.size(2) : 0; }
  int64_t memory_bytes() const override;

 private:
  at::Tensor k_, v_;  // [B, Hkv, capacity, D]
  at::Tensor valid_;  // [B, length] bool, only for left-padded batches
  int64_t length_ = 0;
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
