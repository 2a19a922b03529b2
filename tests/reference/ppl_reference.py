#!/usr/bin/env python3
"""Independent reference for `lawcat ppl` (and greedy `lawcat generate`).

Model: Hugging Face transformers' LlamaForCausalLM loaded from the converted
directory (eager attention, float32), or, with --no-transformers / when
transformers is missing, a plain-torch Llama written here.
Tokenizer: llama2.c's tokenizer.bin encoded as llama2.c's run.c does
(dummy " " prefix, per-UTF-8-character lookup with byte fallback <0xXX> = byte+3,
then greedy merges of the adjacent pair with the highest score).

Windows as lawcat's eval/perplexity.h: documents split on blank lines, each
prefixed with BOS; inputs x[s:s+len], targets x[s+1:s+len+1] for s = 0, ctx, ...

  python ppl_reference.py --model DIR --text FILE --ctx 256         # one JSON line
  python ppl_reference.py --model DIR --generate 60                   # greedy from BOS
"""
import argparse
import json
import math
import re
import struct
import sys
import time

import torch


# ---- llama2.c tokenizer ------------------------------------------------------
class Llama2cTokenizer:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        (self.max_token_len,) = struct.unpack_from("<i", data, 0)
        off = 4
        self.pieces, self.scores = [], []
        while off < len(data):
            score, n = struct.unpack_from("<fi", data, off)
            off += 8
            self.pieces.append(data[off:off + n])
            self.scores.append(score)
            off += n
        self.lookup = {p: i for i, p in enumerate(self.pieces)}  # first id wins, as bsearch on unique strings

    def encode(self, text, bos=True):
        ids = []
        if text:
            ids.append(self.lookup[b" "])
        for ch in text:
            b = ch.encode("utf-8")
            if b in self.lookup:
                ids.append(self.lookup[b])
            else:
                ids.extend(x + 3 for x in b)
        # Merge the adjacent pair with the highest score (the first such pair on ties), as run.c.
        NONE = -1e30

        def pair_score(i):
            j = self.lookup.get(self.pieces[ids[i]] + self.pieces[ids[i + 1]])
            return NONE if j is None else self.scores[j]

        scores = [pair_score(i) for i in range(len(ids) - 1)]
        while scores:
            best = max(scores)
            if best == NONE:
                break
            i = scores.index(best)
            ids[i:i + 2] = [self.lookup[self.pieces[ids[i]] + self.pieces[ids[i + 1]]]]
            del scores[i]
            if i < len(scores):
                scores[i] = pair_score(i)
            if i > 0:
                scores[i - 1] = pair_score(i - 1)
        return ([1] if bos else []) + ids

    def decode_piece(self, prev, tok):
        p = self.pieces[tok]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        m = re.fullmatch(rb"<0x([0-9A-F]{2})>", p)
        if m:
            p = bytes([int(m.group(1), 16)])
        return p


# ---- plain-torch Llama (fallback when transformers is unavailable) -------------
class PlainLlama:
    def __init__(self, model_dir):
        from safetensors.torch import load_file
        cfg = json.load(open(f"{model_dir}/config.json"))
        self.cfg = cfg
        self.w = load_file(f"{model_dir}/model.safetensors")
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.Hkv = cfg.get("num_key_value_heads", self.H)
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / theta ** (torch.arange(0, self.D, 2).float() / self.D)

    def norm(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def __call__(self, ids):
        w, T = self.w, ids.shape[1]
        x = w["model.embed_tokens.weight"][ids]
        ang = torch.arange(T).float()[:, None] * self.inv_freq[None]
        cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
        rot = lambda t: torch.cat([-t[..., self.D // 2:], t[..., :self.D // 2]], -1)
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(self.L):
            p = f"model.layers.{l}."
            h = self.norm(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(1, T, self.H, self.D).transpose(1, 2)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(1, T, self.Hkv, self.D).transpose(1, 2)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(1, T, self.Hkv, self.D).transpose(1, 2)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
            g = self.H // self.Hkv
            k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
            a = ((q @ k.transpose(-1, -2)) / math.sqrt(self.D) + mask).softmax(-1) @ v
            x = x + a.transpose(1, 2).reshape(1, T, -1) @ w[p + "self_attn.o_proj.weight"].T
            h = self.norm(x, w[p + "post_attention_layernorm.weight"])
            m = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
            x = x + m @ w[p + "mlp.down_proj.weight"].T
        x = self.norm(x, w["model.norm.weight"])
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        return x @ head.T


def load_model(model_dir, plain):
    if not plain:
        try:
            from transformers import LlamaForCausalLM
            m = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
            m.eval()
            return (lambda ids: m(ids).logits), "transformers"
        except ImportError:
            pass
    return PlainLlama(model_dir), "plain-torch"


def split_documents(text):
    docs, cur = [], []
    for line in text.split("\n"):
        if line.strip(" \t\r\f\v") == "":
            if cur:
                docs.append("\n".join(cur).strip())
            cur = []
        else:
            cur.append(line)
    if cur:
        docs.append("\n".join(cur).strip())
    return [d for d in docs if d]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text")
    ap.add_argument("--ctx", type=int, default=0)
    ap.add_argument("--tokenizer", help="llama2.c tokenizer.bin (default: MODEL/tokenizer.bin)")
    ap.add_argument("--max-docs", type=int, default=0, help="score only the first N documents")
    ap.add_argument("--generate", type=int, default=0, help="greedy-generate N tokens from BOS instead")
    ap.add_argument("--no-transformers", action="store_true", help="use the plain-torch model")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    model, impl = load_model(args.model, args.no_transformers)
    tok = Llama2cTokenizer(args.tokenizer or f"{args.model}/tokenizer.bin")

    if args.generate:
        ids = [1]
        out = b""
        for _ in range(args.generate):
            nxt = int(model(torch.tensor([ids]))[0, -1].argmax())
            if nxt in (1, 2):
                break
            out += tok.decode_piece(ids[-1], nxt)
            ids.append(nxt)
        print(json.dumps({"impl": impl, "text": out.decode("utf-8", "replace"), "ids": ids[1:]}))
        return

    cfg = json.load(open(f"{args.model}/config.json"))
    ctx = args.ctx or cfg["max_position_embeddings"]
    docs = split_documents(open(args.text, encoding="utf-8").read())
    if args.max_docs:
        docs = docs[:args.max_docs]
    t0 = time.time()
    nll, n, windows = 0.0, 0, 0
    for d in docs:
        x = tok.encode(d)
        for s in range(0, len(x) - 1, ctx):
            ln = min(ctx, len(x) - 1 - s)
            inp = torch.tensor([x[s:s + ln]])
            tgt = torch.tensor(x[s + 1:s + ln + 1])
            logits = model(inp)[0].float()
            nll += torch.nn.functional.cross_entropy(logits, tgt, reduction="sum").item()
            n += ln
            windows += 1
    print(json.dumps({"impl": impl, "ctx": ctx, "documents": len(docs), "windows": windows, "tokens": n,
                      "nll_sum": nll, "mean_nll": nll / max(n, 1), "perplexity": math.exp(nll / max(n, 1)),
                      "seconds": time.time() - t0}))


if __name__ == "__main__":
    sys.exit(main())
