#!/usr/bin/env python3
"""Write a Hugging Face-layout Llama directory with random bf16 weights (std 0.02, norms 1)
from a config.json and a SentencePiece tokenizer, for GPU runs that need a real model
directory of a given shape (e.g. `lawcat eval` grids at 32K tokens on the Llama-3.2-1B
shape). The vocabulary follows the tokenizer. Needs only torch; the safetensors file is
written directly (8-byte header length, JSON header, raw tensors).

usage: make_random_model.py CONFIG_JSON TOKENIZER_MODEL OUT_DIR [--vocab N] [--seed S]
"""
import argparse
import json
import os
import shutil
import struct

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("tokenizer")
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=32000, help="vocabulary size of the tokenizer")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    cfg.update(vocab_size=a.vocab, bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")
    D, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim", D // H)
    g = torch.Generator().manual_seed(a.seed)
    shapes = {"model.embed_tokens.weight": (a.vocab, D), "model.norm.weight": (D,)}
    for i in range(L):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (H * d, D), p + "self_attn.k_proj.weight": (Hkv * d, D),
                       p + "self_attn.v_proj.weight": (Hkv * d, D), p + "self_attn.o_proj.weight": (D, H * d),
                       p + "mlp.gate_proj.weight": (I, D), p + "mlp.up_proj.weight": (I, D),
                       p + "mlp.down_proj.weight": (D, I), p + "input_layernorm.weight": (D,),
                       p + "post_attention_layernorm.weight": (D,)})
    if not cfg.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (a.vocab, D)
    os.makedirs(a.out, exist_ok=True)
    header, blobs, off = {}, [], 0
    for name, shape in shapes.items():
        t = torch.ones(shape) if len(shape) == 1 else torch.randn(shape, generator=g) * 0.02
        b = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.model"))
    print(f"wrote {a.out}: {sum(torch.Size(s).numel() for s in shapes.values()) / 1e9:.2f}B parameters")


if __name__ == "__main__":
    main()
