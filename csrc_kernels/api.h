// The one header src/ includes: torch-free parameter structs and launchers for the
// LAWCAT kernels. Pointers, sizes, element strides and a stream in; cudaError_t out.
//
// Shape letters: B batch (or N packed sequences), T time, H query heads, Hkv kv heads,
// F feature (φ) dim, V value dim, C conv channels / GLA chunk, W conv width.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace lawcat::kernels {

enum class DType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

// ---------------------------------------------------------------------------
// What the LAWCAT kernels take: the one statement of the support rule. The launchers check
// it (cudaErrorInvalidValue otherwise); src/ops asks it, with the sizes read from the tensors,
// to pick a path. Head dim D in {64, 128} (feature dim f = D / 2); conv width 1..8; gate rank
// R a multiple of 16 (the prologue: any such R; the fused forward / backward: R <= 128).
constexpr int kLawcatMaxWidth = 8;
constexpr int kLawcatMaxFusedRank = 128;
constexpr bool lawcat_head_dim_supported(int D) { return D == 64 || D == 128; }
constexpr bool lawcat_width_supported(int width) { return width >= 1 && width <= kLawcatMaxWidth; }
constexpr bool lawcat_prologue_supported(int D, int width, int rank) {
  return lawcat_head_dim_supported(D) && lawcat_width_supported(width) && rank > 0 && rank % 16 == 0;
}
// The fused core (launch_lawcat_fwd / launch_lawcat_bwd): 16-bit inputs and R <= 128 besides.
constexpr bool lawcat_fwd_supported(DType dtype, int D, int width, int rank) {
  return dtype != DType::kF32 && lawcat_prologue_supported(D, width, rank) && rank <= kLawcatMaxFusedRank;
}
// The backward takes what the forward takes (D = 128 splits the value columns over two CTAs).
constexpr bool lawcat_bwd_supported(DType dtype, int D, int width, int rank) {
  return lawcat_fwd_supported(dtype, D, width, rank);
}

// ---------------------------------------------------------------------------
// Causal depthwise Conv1D over time.
//   out[b, t, c] = sum_j w[c, j] * x[b, t - W + 1 + j, cin(c)]
// cin(c) = c when repeat == 1; with repeat = g > 1 the input has C / g channels laid
// out as heads of head_dim and output head h reads input head h / g (GQA repeat
// without materializing it).
struct Conv1dParams {
  DType dtype = DType::kF32;
  int batch = 0, seqlen = 0, channels = 0, width = 0;  // B, T, C (output channels), W
  int repeat = 1, head_dim = 1;                         // see above; Cin = C / repeat
  const void* x = nullptr;                              // [B, T, Cin], channel stride 1
  int64_t x_batch_stride = 0, x_row_stride = 0;         // elements
  const float* w = nullptr;                             // [C, W] fp32, contiguous
  const void* cache = nullptr;  // [B, Cin, W-1] contiguous, inputs before t = 0 (oldest first), or null
  void* out = nullptr;          // [B, T, C] contiguous
  // backward
  const void* dout = nullptr;   // [B, T, C] contiguous
  void* dx = nullptr;           // [B, T, C] contiguous: per OUTPUT channel (sum over repeat outside)
  bool dx_fp32 = false;         // dx written as fp32 instead of the input dtype
  float* dw = nullptr;          // [C, W] fp32, ZEROED by the caller (atomics)
  float* dcache = nullptr;      // [B, C, W-1] fp32 per output channel, or null
};
cudaError_t launch_conv1d_fwd(const Conv1dParams& p, cudaStream_t stream);
cudaError_t launch_conv1d_bwd(const Conv1dParams& p, cudaStream_t stream);

// One decode step: x [B, Cin] (row stride x_batch_stride), cache [B, Cin, W-1] rolled in
// place (must hold W-1 >= 1 entries), out [B, C].
cudaError_t launch_conv1d_step(const Conv1dParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------
// Chunked normalized gated linear attention (docs/kernels.md, "Algorithm").
// Per head: S_t = Diag(exp g_t) S_{t-1} + k_t v_t^T, z_t likewise with k_t,
// y_t = q_t^T S_t / (q_t^T z_t + eps) (or the numerator alone when !normalize).
// q, k: [.., H, F]; v: [.., Hkv, V]; g: [.., Hkv, F] fp32 (<= 0); fp32 state.
// Sequences: without cu_seqlens, N = B sequences of T tokens (row index t of batch b);
// with cu_seqlens (device int32 [N+1]) the inputs are one packed batch (b = 0) and
// sequence n covers rows cu[n] .. cu[n+1]-1; states reset at each sequence start.
struct GlaParams {
  DType dtype = DType::kBF16;
  int num_seqs = 0;   // N
  int seqlen = 0;     // T (without cu_seqlens); total rows with them
  int H = 0, Hkv = 0, D = 0;  // F = V = D in {64, 128} (the binding pads other sizes)
  float eps = 1e-10f;
  bool normalize = true;

  const void *q = nullptr, *k = nullptr, *v = nullptr;
  const float* g = nullptr;
  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;  // elements
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  int64_t g_batch_stride = 0, g_row_stride = 0, g_head_stride = 0;

  // Packed sequences (null otherwise). chunk_offsets[n] = sum of ceil(len_m / C) for m < n,
  // seg_* list the segments (see below) in sequence order, seq_seg_offsets [N+1].
  const int* cu_seqlens = nullptr;
  const int* chunk_offsets = nullptr;
  const int* seq_seg_offsets = nullptr;
  const int* seg_seq = nullptr;
  const int* seg_c0 = nullptr;
  const int* seg_c1 = nullptr;

  // Segments: each sequence's chunks are cut into runs of seg_chunks chunks walked by
  // one CTA each (state carried between runs by a small combine pass). Without
  // cu_seqlens: segs_per_seq = ceil(NC / seg_chunks), NC = ceil(T / C).
  int seg_chunks = 1;
  int segs_per_seq = 1;
  int num_segs = 0;
  int chunk_size = 64;  // C, fixed per (dtype, D): gla_chunk_size()

  // Initial / final state (nullable): [N, H, F, V] and [N, H, F] fp32 contiguous.
  const float* s0 = nullptr;
  const float* z0 = nullptr;
  float* sT = nullptr;
  float* zT = nullptr;

  // Outputs / workspace (contiguous; "tok" = flattened row index b * T + t, or the packed row).
  void* y = nullptr;             // [tok, H, V]
  float* seg_S = nullptr;        // [num_segs, H, F, V]
  float* seg_z = nullptr;        // [num_segs, H, F]
  float* seg_gamma = nullptr;    // [num_segs, H, F]   prod of chunk decays over the segment

  // Backward only.
  float* chunk_S = nullptr;      // [num_slots, H, F, V]: state at each chunk start (+ final), per seq NC+1 slots
  float* chunk_z = nullptr;      // [num_slots, H, F]
  float* chunk_dS = nullptr;     // [num_chunks, H, F, V]: dL/dS at each chunk END
  float* chunk_dz = nullptr;     // [num_chunks, H, F]
  void* chunk_A = nullptr;       // [num_chunks, H, C, C] intra-chunk scores (input dtype)
  float* den = nullptr;          // [tok, H] q.z + eps (1 when !normalize)
  float* dd = nullptr;           // [tok, H] sum_v dy * y, ZEROED by the caller
  const void* dy = nullptr;      // [tok, H, V] contiguous
  const float* dST = nullptr;    // [N, H, F, V] or null
  const float* dzT = nullptr;    // [N, H, F] or null
  void* dq = nullptr;            // [tok, H, F] input dtype
  void* dk = nullptr;            // [tok, H, F] input dtype
  float* dv = nullptr;           // [tok, Hkv, V] fp32, ZEROED (atomics over the group)
  float* dg = nullptr;           // [tok, Hkv, F] fp32, ZEROED (atomics over the group)
  float* ds0 = nullptr;          // [N, H, F, V] or null
  float* dz0 = nullptr;          // [N, H, F] or null
  int num_chunks = 0;            // total chunks over all sequences
  int num_slots = 0;             // num_chunks + N
};

// Chunk length used by the kernels for this dtype / head dim (64, or 32 for fp32 D = 128).
int gla_chunk_size(DType dtype, int D);
// Forward: y, and the final state when sT/zT are set. Workspace seg_* sized num_segs.
cudaError_t launch_gla_fwd(const GlaParams& p, cudaStream_t stream);
// Backward: recomputes the forward states (chunk_S/z, chunk_A, den, dd), walks dL/dS back
// (chunk_dS/dz, ds0/dz0), then the chunk-parallel gradient kernel (dq, dk, dv, dg).
cudaError_t launch_gla_bwd(const GlaParams& p, cudaStream_t stream);

// One decode token: q, k [B, H, F]; v [B, Hkv, V]; g [B, Hkv, F] fp32; state [B, H, F, V] and
// normalizer [B, H, F] fp32 updated in place; y [B, H, V]. Any F, V (generic kernel).
struct GlaStepParams {
  DType dtype = DType::kBF16;
  int batch = 0, H = 0, Hkv = 0, F = 0, V = 0;
  float eps = 1e-10f;
  bool normalize = true;
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  const float* g = nullptr;
  int64_t q_batch_stride = 0, q_head_stride = 0, k_batch_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_head_stride = 0, g_batch_stride = 0, g_head_stride = 0;
  float* state = nullptr;        // [B, H, F, V] contiguous
  float* normalizer = nullptr;   // [B, H, F] contiguous
  void* y = nullptr;             // [B, H, V] contiguous
};
cudaError_t launch_gla_step(const GlaStepParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------
// LAWCAT prologue, forward only (prefill / inference): from the projections to the GLA
// inputs in one pass per (64-token tile, query head):
//   q~ = conv(q_h), k~ = conv(k_{h / g}) (per-head filters), phi(u) = [softmax(u W_h); softmax(-u W_h)]
//   clamped at 1e-12, and for one head per group the gate g = logsigmoid(a W2^T + b) / tau.
struct PrologueParams {
  DType dtype = DType::kBF16;  // q, k, a, phi outputs
  int batch = 0, seqlen = 0, H = 0, Hkv = 0, D = 0, width = 0, rank = 0;
  float tau = 16.f;
  const void *q = nullptr, *k = nullptr, *a = nullptr;  // [B, T, H, D], [B, T, Hkv, D], [B, T, R] contiguous
  const float *conv_q = nullptr, *conv_k = nullptr;     // [H * D, W] fp32
  const float* wphi = nullptr;                          // [H, D, D/2] fp32
  const float *w2 = nullptr, *b2 = nullptr;             // [Hkv * D, R], [Hkv * D] fp32 (b2 nullable)
  void *phi_q = nullptr, *phi_k = nullptr;              // [B, T, H, D] (dtype)
  float* g = nullptr;                                   // [B, T, Hkv, D] fp32
};
cudaError_t launch_lawcat_prologue_fwd(const PrologueParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------
// One LAWCAT decoding step (one token per sequence), the whole core in one launch: per
// (batch, query head) the conv steps of q and k (per query head filters, k read from its kv
// head; caches [B, H*D, W-1] in the input dtype, oldest first, rolled in place), φ of both,
// the gate log α = logsigmoid(a W2^T + b) / tau of the kv head from the fp32 activations
// a = W1 x, then S <- diag(α) S + φ(k~) v^T, z <- α z + φ(k~), y = φ(q~)^T S / (φ(q~) . z + eps).
// Conv outputs and φ are rounded to the input dtype as the separate ops round them.
constexpr bool lawcat_step_supported(DType dtype, int D, int width, int rank) {
  return dtype != DType::kF32 && lawcat_head_dim_supported(D) && lawcat_width_supported(width) && rank > 0 &&
         rank <= kLawcatMaxFusedRank;
}
struct LawcatStepParams {
  DType dtype = DType::kBF16;  // q, k, v, conv caches, y
  int batch = 0, H = 0, Hkv = 0, D = 0, width = 0, rank = 0;  // F = D, f = D / 2
  float tau = 16.f, eps = 1e-10f;
  bool normalize = true;
  const void *q = nullptr, *k = nullptr, *v = nullptr;  // rows [H*D], [Hkv*D], [Hkv*D] (last dim contiguous)
  int64_t q_batch_stride = 0, k_batch_stride = 0, v_batch_stride = 0;  // elements
  const float* a = nullptr;                            // [B, R] fp32
  int64_t a_batch_stride = 0;
  const float *conv_q = nullptr, *conv_k = nullptr;    // [H * D, W] fp32
  void *conv_q_cache = nullptr, *conv_k_cache = nullptr;  // [B, H * D, W - 1] contiguous (width > 1)
  const float* wphi = nullptr;                         // [H, D, D / 2] fp32
  const float *w2 = nullptr, *b2 = nullptr;            // [Hkv * D, R], [Hkv * D] fp32 (b2 nullable)
  float* state = nullptr;                              // [B, H, D, D] fp32, updated in place
  float* normalizer = nullptr;                         // [B, H, D] fp32, updated in place
  void* y = nullptr;                                   // [B, H, D] contiguous
};
cudaError_t launch_lawcat_step(const LawcatStepParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------
// Softmax attention of one query token per sequence over a static KV cache whose valid length
// is on the device (keys 0..*position), for the CUDA-graph decode: split-KV in two launches of
// fixed shape (csrc_kernels/attention/decode_attention.cu). The g = groups query heads of a kv
// head are g rows: q [B, Hkv, g, D], caches [B, Hkv, capacity, D] (16-bit, rows 16-byte aligned),
// out [B, Hkv, g, D]. splits = ceil(capacity / chunk); the part_* workspace holds
// [B, Hkv, splits, g, D] and [B, Hkv, splits, g] fp32.
constexpr int kDecodeAttnMaxGroups = 8;
constexpr bool decode_attention_supported(int D, int groups) {
  return (D == 64 || D == 128) && groups >= 1 && groups <= kDecodeAttnMaxGroups;
}
struct DecodeAttentionParams {
  DType dtype = DType::kBF16;
  int batch = 0, Hkv = 0, groups = 1, D = 0, capacity = 0, chunk = 256, splits = 0;
  float scale = 1.f;                 // applied to q . k (1 / sqrt(D) for SDPA's default)
  const int64_t* position = nullptr;  // device: this token's position (keys 0..position valid)
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  int64_t q_batch_stride = 0, q_head_stride = 0, q_row_stride = 0;  // elements
  int64_t k_batch_stride = 0, k_head_stride = 0, k_row_stride = 0;
  int64_t v_batch_stride = 0, v_head_stride = 0, v_row_stride = 0;
  void* out = nullptr;
  int64_t out_batch_stride = 0, out_head_stride = 0, out_row_stride = 0;
  float *part_out = nullptr, *part_max = nullptr, *part_sum = nullptr;
};
size_t decode_attention_smem(int groups, int chunk, int D);
cudaError_t launch_decode_attention(const DecodeAttentionParams& p, cudaStream_t stream);

// ---------------------------------------------------------------------------
// The whole LAWCAT attention core, forward only (prefill / no-grad), 16-bit inputs,
// D in {64, 128}, feature dim f = D / 2, conv width 1..8: from the projections
//   q [tok, H, D], k, v [tok, Hkv, D] (gla.q / gla.k / gla.v with gla's strides) and the
// gate's low-rank activations a [tok, R] to y [tok, H, D] in one kernel per pass:
// causal conv (per query head filters; k read from its kv head), Hedgehog feature map,
// gate logsigmoid(a W2^T + b) / tau, normalized GLA. Sequences, segments, initial /
// final state and the seg_* workspace are those of GlaParams (launch_gla_fwd).
struct LawcatFwdParams {
  GlaParams gla;
  const void* a = nullptr;                  // [.., R]: row r at a + b * a_batch_stride + r * a_row_stride
  int64_t a_batch_stride = 0, a_row_stride = 0;
  int width = 4, rank = 16;                 // conv width W, gate rank R (lawcat_fwd_supported)
  float tau = 16.f;
  const float *conv_q = nullptr, *conv_k = nullptr;  // [H * D, W] fp32 (per query head)
  const float* wphi = nullptr;                       // [H, D, D / 2] fp32
  const float *w2 = nullptr, *b2 = nullptr;          // [Hkv * D, R], [Hkv * D] fp32 (b2 nullable)
  int* fallback_chunks = nullptr;  // optional device counter: chunks that took the exact path
  // Workspace [rows, Hkv, D] fp32 (rows = B * T, or the packed rows): the chunk-local
  // cumulative log-gates (log2 units), computed once per kv head by the first kernel of the launch.
  float* gate_cumsum = nullptr;
  // Training (optional, all or none): the state and normalizer before every chunk
  // [chunks, H, D, D] / [chunks, H, D] and den + eps per token [rows, H] (fp32), for launch_lawcat_bwd.
  float *state_chunks = nullptr, *z_chunks = nullptr, *den = nullptr;
  // training: Q' = φq e^{G - r} and, where lawcat_bwd_reads_kprime(D), K' = φk e^{r - G} per token
  // [rows, H, D] (input dtype), read by the dstate pass (Q') and the gradient pass instead of
  // recomputing conv and φ
  void *qprime = nullptr, *kprime = nullptr;
  // Backward: d log α / d logit = sigmoid(-logit) / tau per [rows, Hkv, D] (fp32), written by the gate kernel.
  float* gate_dlogit = nullptr;
};
// Backward of the fused core (launch_lawcat_bwd): fwd holds the forward's inputs, the
// segment plan and its workspace (seg_S / seg_z / seg_gamma are reused for dL/dS, gate_cumsum
// is recomputed), plus the forward's saved state_chunks, z_chunks and den. y and dy are
// [rows, H, D] contiguous. dq [rows, H, D] is written once, in the input dtype (no zeroing
// needed; dq_edge is fp32 workspace [num_segs, H, 2, 8, D] for the conv rows that straddle
// segments). The other gradients are fp32 and ACCUMULATED (atomics; zero them first):
// dk, dv [rows, Hkv, D], dlogit [rows, Hkv, D] (w.r.t. the gate logits a W2^T + b),
// db [Hkv * D], dconv_q / dconv_k [H * D, W], dwphi [H, D, D / 2].
constexpr int kDqEdgeRows = 8;  // rows per segment boundary in dq_edge (conv widths up to 8)
// Whether the fused backward reads Q' and K' saved by the training forward (LawcatFwdParams::kprime)
// rather than recomputing the feature maps: at D = 128, where each CTA of the value-split pair
// would recompute them (-8 % f+b at 7B 16K); at D = 64 the recompute costs the same as the
// extra [rows, H, D] of saved activations and their traffic, so K' is not kept.
constexpr bool lawcat_bwd_reads_kprime(int D) { return D == 128; }
struct LawcatBwdParams {
  LawcatFwdParams fwd;
  const void *y = nullptr, *dy = nullptr;
  void* dq = nullptr;
  float* dq_edge = nullptr;
  float *dk = nullptr, *dv = nullptr, *dlogit = nullptr, *db = nullptr;
  float *dconv_q = nullptr, *dconv_k = nullptr, *dwphi = nullptr;
  // Device counter: chunks whose gates decay more than the single-reference scheme takes
  // (the caller must then use the unfused backward; the gradients are not valid).
  int* extreme_chunks = nullptr;
};
// True when launch_lawcat_bwd handles this dtype / head dim / width / rank (lawcat_fwd_supported).
cudaError_t launch_lawcat_bwd(const LawcatBwdParams& p, cudaStream_t stream);

cudaError_t launch_lawcat_fwd(const LawcatFwdParams& p, cudaStream_t stream);

}  // namespace lawcat::kernels
