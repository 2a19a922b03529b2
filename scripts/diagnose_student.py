#!/usr/bin/env python3
"""Why does a LAWCAT student keep its teacher's perplexity but not its retrieval? Measurements.

An independent float64 re-implementation of the LAWCAT layer (arXiv 2509.18467; docs/architecture.md,
"The LAWCAT layer": causal
depthwise conv on q and k, Hedgehog feature map shared by q and k, low-rank gate, normalized gated
linear attention in its quadratic form, with the attention weights written out) is placed beside
the teacher's softmax attention in Hugging Face `transformers`' Llama. Like stage 1, every layer
sees the TEACHER's hidden states and passes the teacher's output on, so each layer is measured on
its own. Prints (and writes as JSON with --json):

  * per layer and head: the relative MSE of the student's pre-W_o output against the teacher's,
    by position bucket (the "attention MSE vs length" of issue 13) on held-out text;
  * retrieval heads: on a passkey prompt, the attention mass each head puts on the needle while
    the teacher copies the key (teacher vs student, per layer and head);
  * the gate: per layer, mean decay alpha, the share of features with a memory longer than 1K
    tokens (alpha > 0.999), and the median memory 1 / (1 - alpha);
  * the feature map: mean entropy of each softmax half of phi(q) and phi(k) (ln 32 = 3.47 is flat);
  * the state's contribution vs distance: the student's mean attention mass at distance buckets.

--check compares this implementation with `lawcat ppl` on an exported student (NLL must agree).

  python3 scripts/diagnose_student.py --teacher ../shared/data/models/retriever13m \
      --student runs/repro/students/lawcat/distill/best/trainable.safetensors
"""
import argparse
import json
import math
import random
import sys

import torch
import torch.nn.functional as F

torch.set_grad_enabled(False)


def load_lawcat_params(path):
    from safetensors import safe_open
    out = {}
    with safe_open(path, "pt") as f:
        for k in f.keys():
            if ".self_attn." in k and any(n in k for n in ("conv_q", "conv_k", "conv_v", "feature_map", "gate_down",
                                                          "gate_up", "window_weight")):
                layer = int(k.split("model.layers.")[1].split(".")[0])
                out.setdefault(layer, {})[k.split(".self_attn.")[1]] = f.get_tensor(k).double()
    return out


class Student:
    """LAWCAT layer l of the student, float64. x: [T, D] hidden states (after the input norm)."""

    def __init__(self, attn, p, opts, cfg):
        self.attn, self.p, self.o = attn, p, opts
        self.H, self.Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.d = cfg.head_dim if getattr(cfg, "head_dim", None) else cfg.hidden_size // self.H
        self.g = self.H // self.Hkv

    def conv(self, u, w):  # u [T, C], w [C, W]: causal depthwise, tap W-1 = current token
        T, C = u.shape
        W = w.shape[1]
        up = torch.cat([u.new_zeros(W - 1, C), u], 0)
        return sum(w[:, j] * up[j:j + T] for j in range(W))

    def phi(self, u):  # u [T, H, d] -> [T, H, F]
        z = torch.einsum("thd,hdf->thf", u, self.p["feature_map"])
        return torch.cat([z.softmax(-1), (-z).softmax(-1)], -1).clamp_min(1e-12)

    def features(self, x):
        a = self.attn
        T = x.shape[0]
        q = x @ a.q_proj.weight.double().T
        k = x @ a.k_proj.weight.double().T
        v = x @ a.v_proj.weight.double().T
        k = k.view(T, self.Hkv, 1, self.d).expand(T, self.Hkv, self.g, self.d).reshape(T, self.H * self.d)
        if "conv_q" in self.p:
            q, k = self.conv(q, self.p["conv_q"]), self.conv(k, self.p["conv_k"])
        if "conv_v" in self.p:
            v = self.conv(v, self.p["conv_v"])
        pq, pk = self.phi(q.view(T, self.H, self.d)), self.phi(k.view(T, self.H, self.d))
        Fd = pq.shape[-1]
        if "gate_down.weight" in self.p:
            z = (x @ self.p["gate_down.weight"].T) @ self.p["gate_up.weight"].T + self.p["gate_up.bias"]
            la = F.logsigmoid(z) / self.o["gate_tau"]                         # [T, Hkv*F]
            la = la.view(T, self.Hkv, 1, Fd).expand(T, self.Hkv, self.g, Fd).reshape(T, self.H, Fd)
        else:
            la = torch.zeros(T, self.H, Fd, dtype=x.dtype)
        v = v.view(T, self.Hkv, 1, self.d).expand(T, self.Hkv, self.g, self.d).reshape(T, self.H, self.d)
        return pq, pk, la, v

    def weights(self, x, rows=None, block=64):
        """Attention weights A [H, len(rows), T] (normalized) and outputs y [len(rows), H, d]."""
        pq, pk, la, v = self.features(x)
        T = x.shape[0]
        G = la.cumsum(0)                                                       # [T, H, F]
        rows = torch.arange(T) if rows is None else torch.as_tensor(rows)
        As, ys = [], []
        for b in range(0, len(rows), block):
            r = rows[b:b + block]
            dec = (G[r][:, None] - G[None, :]).clamp(max=0)                     # [R, T, H, F]; s > t masked below
            A = torch.einsum("rhf,shf,rshf->hrs", pq[r], pk, dec.exp())
            A = A * (torch.arange(T)[None, None, :] <= r[None, :, None])
            den = A.sum(-1, keepdim=True) + self.o["eps"]
            if self.o["normalize"]:
                A = A / den
            As.append(A)
            ys.append(torch.einsum("hrs,shd->rhd", A, v))
        return torch.cat(As, 1), torch.cat(ys, 0), la


def attach(model, lawcat, opts, record):
    """Wrap each layer's attention: compute the teacher (eager softmax) and the student from the same
    input; pass the teacher's output on; record both pre-W_o outputs."""
    import transformers.models.llama.modeling_llama as ml
    cfg = model.config
    for li, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        st = Student(attn, lawcat[li], opts, cfg)
        orig = attn.forward

        def fwd(hidden_states, position_embeddings=None, attention_mask=None, _orig=orig, _st=st, _li=li, **kw):
            x = hidden_states[0].double()
            T = x.shape[0]
            H, d = _st.H, _st.d
            if record.get("student_mode"):  # --check: the student end to end
                _, ys, _ = _st.weights(x)
                return _st.attn.o_proj(ys.reshape(1, T, H * d).to(hidden_states.dtype)), None
            # teacher pre-W_o output: hook o_proj's input
            cap = {}
            h = _st.attn.o_proj.register_forward_hook(lambda m, i, o: cap.__setitem__("y", i[0]))
            out = _orig(hidden_states, position_embeddings=position_embeddings, attention_mask=attention_mask, **kw)
            h.remove()
            yt = cap["y"][0].double().view(T, H, d)
            if record.get("student_rows") is not None:
                A, ys, la = _st.weights(x, record["student_rows"])
                record.setdefault("A", {})[_li] = A
                record.setdefault("teacher_y", {})[_li] = yt[record["student_rows"]]
                record.setdefault("student_y", {})[_li] = ys
                record.setdefault("log_alpha", {})[_li] = la
                pq, pk, _, _ = _st.features(x)
                record.setdefault("phi", {})[_li] = (pq, pk)
            return out

        attn.forward = fwd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True, help="HF directory of the teacher")
    ap.add_argument("--student", required=True, help="LAWCAT parameters: a run's distill/best/trainable.safetensors "
                                                       "or an export's model.safetensors")
    ap.add_argument("--config", help="the student's config.json (lawcat section); default: paper defaults")
    ap.add_argument("--text", default="../shared/data/corpora/gutenberg/gutenberg_val.jsonl.xz")
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--bucket", type=int, default=512)
    ap.add_argument("--seed", type=int, default=7, help="passkey sample seed (not an eval seed)")
    ap.add_argument("--json")
    ap.add_argument("--check", help="text file: print the student's mean NLL end to end (compare with lawcat ppl)")
    a = ap.parse_args()
    from transformers import AutoModelForCausalLM
    import sentencepiece as spm
    opts = {"gate_tau": 16.0, "eps": 1e-10, "normalize": True}
    if a.config:
        lc = json.load(open(a.config)).get("lawcat", {})
        opts.update({k: lc[k] for k in ("gate_tau", "eps", "normalize") if k in lc})
    model = AutoModelForCausalLM.from_pretrained(a.teacher, dtype=torch.float64, attn_implementation="eager").eval()
    sp = spm.SentencePieceProcessor(model_file=a.teacher + "/tokenizer.model")
    lawcat = load_lawcat_params(a.student)
    record = {}
    attach(model, lawcat, opts, record)
    if a.check:  # mean NLL of the student end to end on the first --length tokens of a text file
        record["student_mode"] = True
        text = open(a.check).read().split("\n\n")[0]
        ids = torch.tensor([[1] + sp.encode(text)[: a.length - 1]])
        logits = model(ids).logits[0, :-1].double()
        nll = F.cross_entropy(logits, ids[0, 1:])
        print(f"student mean NLL over {ids.shape[1] - 1} tokens: {float(nll):.6f}")
        return 0
    res = {"student": a.student, "length": a.length}
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads

    # ---- 1. held-out text: relative MSE by layer / head / position bucket; gate; phi entropy ----
    import lzma
    opener = lzma.open if a.text.endswith(".xz") else open
    with opener(a.text, "rt") as f:
        doc = json.loads(f.readline())["text"] if ".jsonl" in a.text else f.read()
    ids = [1] + sp.encode(doc)[: a.length - 1]
    T = len(ids)
    record["student_rows"] = list(range(T))
    model(torch.tensor([ids]))
    nb = T // a.bucket
    mse = []
    for li in range(L):
        yt, ys = record["teacher_y"][li], record["student_y"][li]          # [T, H, d]
        row = []
        for h in range(H):
            row.append([float(((ys[b * a.bucket:(b + 1) * a.bucket, h] - yt[b * a.bucket:(b + 1) * a.bucket, h]) ** 2).sum()
                              / (yt[b * a.bucket:(b + 1) * a.bucket, h] ** 2).sum()) for b in range(nb)])
        mse.append(row)
    res["rel_mse"] = mse
    print(f"relative MSE of the pre-W_o output (student vs teacher, teacher-forced), by {a.bucket}-token bucket:")
    for li in range(L):
        for h in range(H):
            print(f"  L{li}h{h}: " + " ".join(f"{x:6.3f}" for x in mse[li][h]))
    # state contribution vs distance: mean attention mass at distance buckets (rows in the last bucket)
    edges = [0, 1, 2, 4, 16, 64, 256, 1024, 1 << 30]
    dist = {}
    rows = torch.arange(T - a.bucket, T)
    for li in range(L):
        A = record["A"][li][:, rows]                                           # [H, R, T]
        dd = rows[:, None] - torch.arange(T)[None, :]
        dist[li] = [[float(A[h][(dd >= lo) & (dd < hi)].sum() / len(rows)) for lo, hi in zip(edges, edges[1:])]
                    for h in range(H)]
    res["mass_by_distance"] = {"edges": edges, "per_layer": dist}
    print("student attention mass by distance (rows of the last bucket), distance edges", edges[:-1])
    for li in range(L):
        print(f"  L{li}: " + " | ".join(" ".join(f"{x:.2f}" for x in dist[li][h]) for h in range(H)))
    gate = []
    for li in range(L):
        al = record["log_alpha"][li].exp()                                      # [T, H, F]
        mem = 1 / (1 - al).clamp_min(1e-9)
        gate.append({"mean_alpha": float(al.mean()), "share_alpha_gt_0.999": float((al > 0.999).double().mean()),
                     "median_memory_tokens": float(mem.median())})
    res["gate"] = gate
    print("gate per layer: mean alpha, share of features with alpha > 0.999, median memory 1/(1-alpha):")
    for li, g in enumerate(gate):
        print(f"  L{li}: {g['mean_alpha']:.4f}  {g['share_alpha_gt_0.999']:.3f}  {g['median_memory_tokens']:.1f}")
    ent = []
    for li in range(L):
        pq, pk = record["phi"][li]
        f = pq.shape[-1] // 2
        e = lambda p: float(-(p * p.log()).sum(-1).mean())
        ent.append({"q": (e(pq[..., :f]) + e(pq[..., f:])) / 2, "k": (e(pk[..., :f]) + e(pk[..., f:])) / 2,
                    "flat": math.log(f)})
    res["phi_entropy"] = ent
    print("feature-map entropy per softmax half (flat = ln f):",
          " ".join(f"L{li} q {x['q']:.2f} k {x['k']:.2f}" for li, x in enumerate(ent)), f"(flat {ent[0]['flat']:.2f})")

    # ---- 2. passkey: attention mass on the needle while the teacher copies the key ----
    import transformers.models.llama.modeling_llama as ml
    rng = random.Random(a.seed)
    key = str(rng.randint(1, 50000))
    garb = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
    g = " ".join([garb] * 60)
    pre, suf = g[:1700], g[:1700]
    prompt = "\n".join(["There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
                        "I will quiz you about the important information there.", pre,
                        f"The pass key is {key}. Remember it. {key} is the pass key.", suf,
                        "What is the pass key? The pass key is"])
    pids = [1] + sp.encode(prompt)
    full = pids + sp.encode(" " + key)[1:] if sp.encode(" " + key)[0] == sp.piece_to_id("▁") else pids + sp.encode(" " + key)
    P = len(pids)
    needle_lo = next(i for i in range(P) if sp.decode(pids[1:i + 1]).endswith(f"The pass key is {key}"))
    needle = list(range(needle_lo - 8, needle_lo + 12))
    rows = list(range(P - 1, len(full) - 1))
    record.clear()
    record["student_rows"] = rows
    # teacher attention weights: eager attention returns them
    tw = {}
    orig_eager = ml.eager_attention_forward

    def eager(module, q, k, v, mask, scaling, dropout=0.0, **kw):
        o, w = orig_eager(module, q, k, v, mask, scaling, dropout, **kw)
        tw[module.layer_idx] = w[0].double()
        return o, w
    ml.ALL_ATTENTION_FUNCTIONS["eager"] = eager
    model(torch.tensor([full]))
    ml.ALL_ATTENTION_FUNCTIONS["eager"] = orig_eager
    pk_res = []
    print(f"passkey prompt of {P} tokens, needle at {needle_lo}: attention mass on the needle while copying "
          f"(teacher / student, mean over the {len(rows)} answer steps):")
    for li in range(L):
        tm = tw[li][:, rows][:, :, needle].sum(-1).mean(-1)                    # [H]
        sm = record["A"][li][:, :, needle].sum(-1).mean(-1)
        pk_res.append({"teacher": tm.tolist(), "student": sm.tolist()})
        print(f"  L{li}: " + "  ".join(f"h{h} {tm[h]:.2f}/{sm[h]:.2f}" for h in range(H)))
    res["passkey_needle_mass"] = pk_res
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
