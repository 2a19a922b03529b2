"""LAWCAT students in Hugging Face `transformers` (pure PyTorch, no custom kernels).

`lawcat` exports a distilled student as a Llama-layout directory whose config.json carries a
`lawcat` section and an `auto_map` pointing at this file, so

    model = transformers.AutoModelForCausalLM.from_pretrained(export_dir, trust_remote_code=True)

gives the same logits as `lawcat` (tests/model/test_python_student.cpp). The layers listed in
`lawcat.layers` (all when absent) carry LAWCAT attention (LAWCAT, Liu et al., EMNLP Findings 2025, arXiv 2509.18467;
docs/architecture.md, "The LAWCAT layer"):

    q = x Wq, k = x Wk, v = x Wv (+ biases: Qwen2 on q/k/v, attention_bias on all four projections)
    (Qwen3) q, k <- q_norm(q), k_norm(k)   RMSNorm over each head's d dims
    k (and v) repeated to the H query heads (GQA)
    q~ = conv_q(q), k~ = conv_k(k)      causal depthwise, width c (0 = none), tap c-1 = current token
    v~ = conv_v(v)                      only with conv_on_v
    (rope: true) RoPE on q~, k~
    phi(u) = [softmax(u Wphi_h); softmax(-u Wphi_h)], clamped >= 1e-12   (F = 2 f dims)
    log a = logsigmoid(W2 W1 x + b) / tau   per kv head and phi dim (0 without the gate)
    S_t = Diag(a_t) S_{t-1} + phi(k~_t) v_t^T,  z_t = Diag(a_t) z_{t-1} + phi(k~_t)
    y_t = phi(q~_t)^T S_t / (phi(q~_t)^T z_t + eps)     (normalize: false -> no denominator)
    (window W > 0) LoLCATs hybrid: softmax over the last W tokens (teacher's RoPE'd q, k) plus the
    linear sum over older tokens, one shared normalizer, the window weighed by sigmoid(w_h)
    out = Wo y

Computed in chunks of `chunk_size` tokens (the decay factorization: inside a chunk the decays are
taken element-wise from the chunk's cumulative log-gate, so every exponent is <= 0), in float32
(float64 when the model is loaded in float64).

Not implemented: a recurrent cache. `generate` works by recomputing the whole prefix at every step
(use_cache=False is forced), so decoding costs O(T^2) here; `lawcat generate` decodes in constant
memory. Left padding is refused (right padding is harmless for a causal model). Students of Qwen2 /
Qwen3 teachers (config.json "architectures": Qwen2's q/k/v biases, Qwen3's q_norm / k_norm applied to
q and k right after the projections) are built only with LAWCAT on every layer; with softmax layers
left they are refused with NotImplementedError, as are Mistral students with softmax layers left and a
sliding_window (their softmax layers would need the window).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from .configuration_lawcat import LawcatConfig

_DEFAULTS = {
    "kind": "lawcat",
    "conv_width": 4,
    "gate": True,
    "gate_rank": 16,
    "gate_tau": 16.0,
    "feature_dim": 0,
    "normalize": True,
    "eps": 1e-10,
    "conv_on_v": False,
    "rope": False,
    "window": 0,
    "chunk_size": 64,
}


# Teacher architectures (config.json "architectures") whose students this file builds. Qwen2 / Qwen3
# students only with LAWCAT on every layer (their softmax layers are not built here).
_TEACHERS = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}
_QWEN = {"Qwen2ForCausalLM", "Qwen3ForCausalLM"}


def teacher_architecture(config):
    return (getattr(config, "architectures", None) or ["LlamaForCausalLM"])[0]


def lawcat_settings(config):
    s = dict(_DEFAULTS)
    s.update(getattr(config, "lawcat", None) or {})
    return s


def causal_conv(u, w):
    """u [B, T, C], w [C, W] -> [B, T, C]: out_t = sum_j w[:, j] * u_{t-W+1+j} (zeros before t = 0)."""
    T, W = u.shape[1], w.shape[1]
    up = F.pad(u, (0, 0, W - 1, 0))
    return sum(w[:, j] * up[:, j:j + T] for j in range(W))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    """x [B, T, H, d]; cos, sin [B, T, d] (transformers' rotary embedding)."""
    cos, sin = cos.unsqueeze(2).to(x.dtype), sin.unsqueeze(2).to(x.dtype)
    return x * cos + rotate_half(x) * sin


def gated_linear_attention(q, k, v, g, chunk=64):
    """Unnormalized gated linear attention, chunked. q, k [B, T, H, F], v [B, T, H, V], g [B, T, H, F]
    log-decays (<= 0). Returns y [B, T, H, V], y_t = sum_{s<=t} (q_t . (k_s * exp(G_t - G_s))) v_s."""
    B, T, H, Fd = q.shape
    S = q.new_zeros(B, H, Fd, v.shape[-1])
    out = []
    for s0 in range(0, T, chunk):
        qc, kc, vc, gc = (t[:, s0:s0 + chunk].transpose(1, 2) for t in (q, k, v, g))   # [B, H, C, .]
        C = qc.shape[2]
        G = gc.cumsum(2)                                                                # [B, H, C, F]
        inter = (qc * G.exp()) @ S                                                       # [B, H, C, V]
        causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        D = (G.unsqueeze(3) - G.unsqueeze(2)).masked_fill(~causal[:, :, None], float("-inf")).exp()  # [B, H, t, s, F]
        A = torch.einsum("bhtf,bhsf,bhtsf->bhts", qc, kc, D)
        out.append(inter + A @ vc)
        GC = G[:, :, -1:]                                                                # [B, H, 1, F]
        S = GC.transpose(-1, -2).exp() * S + (kc * (GC - G).exp()).transpose(-1, -2) @ vc
    return torch.cat(out, 2).transpose(1, 2)


def window_softmax(q, k, v, W):
    """Softmax part of the window hybrid over the band t-W < s <= t, blocked (no T x T matrix).
    q, k [B, T, H, d] (RoPE'd), v [B, T, H, d]. Returns numerator [B, T, H, d] and denominator
    [B, T, H, 1] of exp(q.k/sqrt(d) - max over the band)."""
    B, T, H, d = q.shape
    nb = (T + W - 1) // W
    pad = nb * W - T

    def blocks(x):
        return F.pad(x, (0, 0, 0, 0, 0, pad)).view(B, nb, W, H, x.shape[-1])

    def with_previous(xb):
        return torch.cat([F.pad(xb, (0, 0, 0, 0, 0, 0, 1, 0))[:, :nb], xb], 2)      # [B, nb, 2W, H, .]

    qb, kb, vb = blocks(q), with_previous(blocks(k)), with_previous(blocks(v))
    logits = torch.einsum("bnihd,bnjhd->bnhij", qb, kb) / math.sqrt(d)               # [B, nb, H, W, 2W]
    i = torch.arange(W, device=q.device)[:, None]
    j = torch.arange(2 * W, device=q.device)[None, :]
    band = ((j > i) & (j <= i + W)).expand(nb, W, 2 * W).clone()
    band[0, :, :W] = False                                                           # block 0: no previous block
    logits = logits.masked_fill(~band[None, :, None], float("-inf"))
    e = (logits - logits.amax(-1, keepdim=True)).exp()
    num = torch.einsum("bnhij,bnjhd->bnihd", e, vb).reshape(B, nb * W, H, d)[:, :T]
    den = e.sum(-1).permute(0, 1, 3, 2).reshape(B, nb * W, H, 1)[:, :T]
    return num, den


class LawcatAttention(nn.Module):
    """A LAWCAT attention layer with the teacher's projections (parameter names as `lawcat` exports
    them: self_attn.{q,k,v,o}_proj.weight, conv_q, conv_k, conv_v, feature_map, gate_down.weight,
    gate_up.weight, gate_up.bias, window_weight)."""

    def __init__(self, config, layer_idx):
        super().__init__()
        s = lawcat_settings(config)
        self.layer_idx = layer_idx
        self.H, self.Hkv = config.num_attention_heads, config.num_key_value_heads
        self.d = getattr(config, "head_dim", None) or config.hidden_size // self.H
        self.group = self.H // self.Hkv
        self.conv_width = int(s["conv_width"])
        self.use_gate = bool(s["gate"])
        self.tau = float(s["gate_tau"])
        self.normalize = bool(s["normalize"])
        self.eps = float(s["eps"])
        self.rope = bool(s["rope"])
        self.window = int(s["window"])
        self.chunk = int(s["chunk_size"]) or 64
        self.f = int(s["feature_dim"]) or self.d // 2
        self.Fd = 2 * self.f
        D, H, Hkv, d = config.hidden_size, self.H, self.Hkv, self.d
        teacher = teacher_architecture(config)
        # Qwen2: biases on q, k, v (never o); Llama / Qwen3: attention_bias on all four.
        bias = bool(getattr(config, "attention_bias", False)) and teacher != "Qwen2ForCausalLM"
        qkv_bias = bias or teacher == "Qwen2ForCausalLM"
        self.q_proj = nn.Linear(D, H * d, bias=qkv_bias)
        self.k_proj = nn.Linear(D, Hkv * d, bias=qkv_bias)
        self.v_proj = nn.Linear(D, Hkv * d, bias=qkv_bias)
        self.o_proj = nn.Linear(H * d, D, bias=bias)
        # Qwen3: per-head RMSNorm on q and k, applied (as in lawcat) right after the projections.
        if teacher == "Qwen3ForCausalLM":
            self.q_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
            self.k_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = None
        self.conv_q = self.conv_k = self.conv_v = None
        if self.conv_width > 0:
            self.conv_q = nn.Parameter(torch.zeros(H * d, self.conv_width))
            self.conv_k = nn.Parameter(torch.zeros(H * d, self.conv_width))
            if s["conv_on_v"]:
                self.conv_v = nn.Parameter(torch.zeros(Hkv * d, self.conv_width))
        self.feature_map = nn.Parameter(torch.zeros(H, d, self.f))
        if self.use_gate:
            self.gate_down = nn.Linear(D, int(s["gate_rank"]), bias=False)
            self.gate_up = nn.Linear(int(s["gate_rank"]), Hkv * self.Fd, bias=True)
        self.window_weight = nn.Parameter(torch.zeros(H)) if self.window > 0 else None

    def _heads(self, x, n):  # [B, T, Hkv, n] -> [B, T, H, n], query head h reads kv head h // group
        B, T = x.shape[:2]
        return x.view(B, T, self.Hkv, 1, n).expand(B, T, self.Hkv, self.group, n).reshape(B, T, self.H, n)

    def phi(self, u):  # [B, T, H, d] -> [B, T, H, F]
        z = torch.einsum("bthd,hdf->bthf", u, self.feature_map.to(u.dtype))
        return torch.cat([z.softmax(-1), (-z).softmax(-1)], -1).clamp_min(1e-12)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
        x = hidden_states
        B, T, _ = x.shape
        H, Hkv, d, Fd = self.H, self.Hkv, self.d, self.Fd
        cd = torch.float64 if x.dtype == torch.float64 else torch.float32
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)                      # [B, T, H*d], [B, T, Hkv*d]
        if self.q_norm is not None:                                                    # Qwen3, per head
            q = self.q_norm(q.view(B, T, H, d)).reshape(B, T, H * d)
            k = self.k_norm(k.view(B, T, Hkv, d)).reshape(B, T, Hkv * d)
        q, k, v = q.to(cd), k.to(cd), v.to(cd)
        xf = x.to(cd)
        kr = self._heads(k.view(B, T, Hkv, d), d).reshape(B, T, H * d)
        qc, kc, vl = q, kr, v
        if self.conv_width > 0:
            qc, kc = causal_conv(q, self.conv_q.to(cd)), causal_conv(kr, self.conv_k.to(cd))
            if self.conv_v is not None:
                vl = causal_conv(v, self.conv_v.to(cd))
        qc, kc = qc.view(B, T, H, d), kc.view(B, T, H, d)
        if self.rope or self.window > 0:
            if position_embeddings is None:
                raise ValueError("LawcatAttention: position_embeddings (cos, sin) are needed for rope / window")
            cos, sin = position_embeddings
        if self.rope:
            qc, kc = apply_rope(qc, cos, sin), apply_rope(kc, cos, sin)
        phiq, phik = self.phi(qc), self.phi(kc)                                             # [B, T, H, F]
        if self.use_gate:
            z = F.linear(F.linear(xf, self.gate_down.weight.to(cd)), self.gate_up.weight.to(cd),
                         self.gate_up.bias.to(cd))
            g = self._heads((F.logsigmoid(z) / self.tau).view(B, T, Hkv, Fd), Fd)          # [B, T, H, F]
        else:
            g = xf.new_zeros(B, T, H, Fd)
        vh = self._heads(vl.view(B, T, Hkv, d), d)                                          # [B, T, H, d]
        ones = vh.new_ones(B, T, H, 1)
        if self.window <= 0:
            r = gated_linear_attention(phiq, phik, torch.cat([vh, ones], -1), g, self.chunk)
            num, den = r[..., :d], r[..., d:]
            y = num / (den + self.eps) if self.normalize else num
        else:
            W = self.window
            # Linear part over s <= t - W: keys and values delayed by W tokens, the delayed key
            # scaled by the decay of the W gates it spent in the window.
            k_lag = F.pad(phik, (0, 0, 0, 0, W, 0))[:, :T]
            v_lag = F.pad(torch.cat([vh, ones], -1), (0, 0, 0, 0, W, 0))[:, :T]
            if self.use_gate:
                Gd = F.pad(g, (0, 0, 0, 0, W, 0)).double().cumsum(1)
                k_lag = k_lag * (Gd[:, W:W + T] - Gd[:, :T]).to(cd).exp()
            r = gated_linear_attention(phiq, k_lag, v_lag, g, self.chunk)
            lin_num, lin_den = r[..., :d], r[..., d:]
            qr = apply_rope(q.view(B, T, H, d), cos, sin)
            krope = self._heads(apply_rope(k.view(B, T, Hkv, d), cos, sin), d)
            sm_num, sm_den = window_softmax(qr, krope, vh, W)
            w = torch.sigmoid(self.window_weight.to(cd)).view(1, 1, H, 1)
            y = (w * sm_num + (1 - w) * lin_num) / (w * sm_den + (1 - w) * lin_den + self.eps)
        return self.o_proj(y.reshape(B, T, H * d).to(x.dtype)), None


class LawcatForCausalLM(LlamaForCausalLM):
    config_class = LawcatConfig

    def __init__(self, config):
        teacher = teacher_architecture(config)
        if teacher not in _TEACHERS:
            raise NotImplementedError(
                f"this LAWCAT student was distilled from a {teacher} teacher; modeling_lawcat.py only "
                f"builds students of {', '.join(sorted(_TEACHERS))} teachers (use `lawcat generate` / "
                f"`lawcat ppl` / `lawcat eval` for it)")
        s = lawcat_settings(config)
        layers = s.get("layers") or list(range(config.num_hidden_layers))
        if teacher in _QWEN and sorted(layers) != list(range(config.num_hidden_layers)):
            # The remaining softmax layers would need Qwen's attention (q/k/v biases without an o
            # bias, q/k norms, sliding-window layers), which this Llama skeleton does not build.
            raise NotImplementedError(
                f"this LAWCAT student of a {teacher} teacher has LAWCAT on layers {sorted(layers)} only; "
                f"modeling_lawcat.py builds {teacher} students only with LAWCAT on every layer (use "
                f"`lawcat generate` / `lawcat ppl` / `lawcat eval` for it)")
        window = getattr(config, "sliding_window", None)
        if teacher == "MistralForCausalLM" and window and sorted(layers) != list(range(config.num_hidden_layers)):
            # lawcat applies Mistral's window to the softmax layers left; this Llama skeleton's
            # softmax layers attend to every key, so past the window they would differ.
            raise NotImplementedError(
                f"this LAWCAT student of a MistralForCausalLM teacher keeps softmax layers (LAWCAT on "
                f"{sorted(layers)} only) with sliding_window {window}, which modeling_lawcat.py does not "
                f"apply; it builds Mistral students only with LAWCAT on every layer (use `lawcat generate` "
                f"/ `lawcat ppl` / `lawcat eval` for it)")
        super().__init__(config)
        if s["kind"] != "lawcat":
            raise NotImplementedError(f"lawcat.kind '{s['kind']}' (only 'lawcat' layers are implemented here)")
        for i in layers:
            self.model.layers[i].self_attn = LawcatAttention(config, i)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, *args, **kwargs):
        if attention_mask is not None and attention_mask.dim() == 2 and (attention_mask.diff(dim=-1) > 0).any():
            raise NotImplementedError("LAWCAT layers here do not take left padding (pad on the right)")
        return super().forward(input_ids, attention_mask, *args, **kwargs)

    def generate(self, *args, **kwargs):
        # No recurrent cache here: every step recomputes the prefix.
        kwargs["use_cache"] = False
        return super().generate(*args, **kwargs)
