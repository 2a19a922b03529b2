#!/usr/bin/env python3
"""How does the teacher retrieve a passkey? Its circuit, measured (docs/results/NOTES.md).

Runs the teacher in Hugging Face `transformers` (eager attention, float32, CPU) on passkey prompts in
`lawcat eval`'s format and prints:
  * per layer and head, the attention mass on the needle while the teacher copies the key, and the
    mass on the previous token (previous-token heads) averaged over the prompt;
  * an ablation: passkey accuracy when chosen heads attend like a LAWCAT layer at its initial gate
    (an exponential average over past tokens, alpha = 0.957 per token) instead of as trained.

  python3 scripts/diagnose_teacher.py --teacher ../shared/data/models/retriever13m
Seeds 100+ (never the eval's).
"""
import argparse
import json
import os
import random

import torch

torch.set_grad_enabled(False)
GARBAGE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
TASK = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz "
        "you about the important information there.")
QUESTION = "What is the pass key? The pass key is"


def prompt(depth, chars, key):
    g = " ".join([GARBAGE] * (chars // len(GARBAGE) + 2))
    n1 = round(depth * chars)
    return "\n".join([TASK, g[:n1], f"The pass key is {key}. Remember it. {key} is the pass key.", g[:chars - n1],
                      QUESTION])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--chars", type=int, default=3400, help="garbage characters (3400: a ~1K-token prompt)")
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--json", help="also write the per-head needle mass and the copying head (the head with "
                                   "the most) here: what scripts/repro.sh's sharpen stage reads for `auto`")
    ap.add_argument("--no-ablation", action="store_true", help="the circuit only, not the ablations")
    a = ap.parse_args()
    import sentencepiece as spm
    import transformers.models.llama.modeling_llama as ml
    from transformers import AutoModelForCausalLM
    sp = spm.SentencePieceProcessor(model_file=a.teacher + "/tokenizer.model")
    m = AutoModelForCausalLM.from_pretrained(a.teacher, dtype=torch.float32, attn_implementation="eager").eval()
    L, H = m.config.num_hidden_layers, m.config.num_attention_heads
    orig = ml.eager_attention_forward
    state = {"ablate": {}, "alpha": 0.957, "weights": {}}

    def patched(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        out, w = orig(module, query, key, value, attention_mask, scaling, dropout, **kw)
        li = module.layer_idx
        state["weights"][li] = w[0]
        if li in state["ablate"]:
            T = query.shape[2]
            idx = torch.arange(T)
            dist = (idx[:, None] - idx[None, :]).float()
            W = torch.where(dist >= 0, state["alpha"] ** dist, torch.zeros(()))
            W = W / W.sum(-1, keepdim=True)
            v = ml.repeat_kv(value, module.num_key_value_groups)
            ex = torch.einsum("ts,bhsd->bhtd", W, v).transpose(1, 2)
            out = out.clone()
            for h in state["ablate"][li]:
                out[:, :, h] = ex[:, :, h]
        return out, w

    ml.ALL_ATTENTION_FUNCTIONS["eager"] = patched

    def run(n):
        rng = random.Random(a.seed)
        ok = 0
        for i in range(n):
            key = str(rng.randint(1, 50000))
            ids = torch.tensor([[1] + sp.encode(prompt([0.1, 0.3, 0.5, 0.7, 0.9, 1.0][i % 6], a.chars, key))])
            g = m.generate(ids, max_new_tokens=8, do_sample=False)
            ok += key in sp.decode(g[0, ids.shape[1]:].tolist())
        return ok / n

    # ---- the circuit ----
    key = "31415"
    ids = [1] + sp.encode(prompt(0.5, a.chars, key))
    full = m.generate(torch.tensor([ids]), max_new_tokens=7, do_sample=False)[0].tolist()
    m(torch.tensor([full]))
    P = len(ids)
    start = next(i for i in range(P) if sp.decode(ids[1:i + 1]).endswith(f"The pass key is {key}"))
    needle = list(range(start - 8, start + 12))
    rows = list(range(P - 1, len(full) - 1))
    print(f"prompt {P} tokens, generated {sp.decode(full[P:])!r}; needle tokens {needle[0]}..{needle[-1]}")
    print("per head: attention mass on the needle while copying the key | mass on the previous token (whole prompt)")
    mass = []
    for li in range(L):
        w = state["weights"][li]                                                  # [H, T, T]
        nm = w[:, rows][:, :, needle].sum(-1).mean(-1)
        T = w.shape[-1]
        prev = w[:, torch.arange(1, T), torch.arange(0, T - 1)].mean(-1)
        print(f"  L{li}: " + "  ".join(f"h{h} {nm[h]:.2f}|{prev[h]:.2f}" for h in range(H)))
        mass.append([round(float(x), 4) for x in nm])
    cl, ch = max(((li, h) for li in range(L) for h in range(H)), key=lambda lh: mass[lh[0]][lh[1]])
    print(f"copying head: L{cl} h{ch} ({mass[cl][ch]:.2f} of its attention on the needle)")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"teacher": a.teacher, "needle_mass": mass,
                       "copy_head": {"layer": cl, "head": ch, "needle_mass": mass[cl][ch]}}, f, indent=1)
        os.replace(tmp, a.json)
    if a.no_ablation:
        return
    # ---- ablations ----
    print(f"passkey accuracy at ~1K tokens ({a.samples} samples, depths 10..100 %), heads replaced by an "
          f"exponential average (alpha {state['alpha']}):")
    for name, heads in [("none", {}), ("L1 h1,h5 (previous-token heads)", {1: [1, 5]}),
                        ("L3 h3 (the copying head)", {3: [3]}), ("L0 all (diffuse heads)", {0: list(range(H))}),
                        ("L5 all", {5: list(range(H))})]:
        state["ablate"] = heads
        print(f"  {name:34s} {100 * run(a.samples):5.1f} %", flush=True)


if __name__ == "__main__":
    main()
