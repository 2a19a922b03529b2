#!/usr/bin/env python3
"""Recurrent vs chunked LAWCAT at long length, on an exported student (issue 13's diagnostics).

The chunked form (chunks of `chunk_size`, what `lawcat` trains and prefills with) and the
recurrence (one token at a time: the same code with chunks of one token) are the same function;
this runs an export's modeling_lawcat.py both ways over one long held-out document and prints the
largest logit difference and the mean NLL per 1K-token bucket of each, so a failure at length can be
told apart from a numerical drift of the chunked form.

  python3 scripts/check_recurrent_chunked.py --model runs/repro/students/lawcat/export \
      --text ../shared/data/corpora/gutenberg/gutenberg_val.jsonl.xz --length 32768
"""
import argparse
import json
import lzma
import os
import sys

import sentencepiece as spm
import torch


def load_student(model_dir):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    from lawcat_hf.configuration_lawcat import LawcatConfig
    from lawcat_hf.modeling_lawcat import LawcatForCausalLM
    from safetensors.torch import load_file

    cfg = LawcatConfig(**json.load(open(os.path.join(model_dir, "config.json"))))
    model = LawcatForCausalLM(cfg)
    state = {k: v.float() for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not cfg.tie_word_embeddings]
    if missing or unexpected:
        raise SystemExit(f"{model_dir}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return model.float().eval()


def long_document(path, sp, length):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt") as f:
        for line in f:
            ids = [sp.bos_id()] + sp.encode(json.loads(line)["text"])
            if len(ids) >= length:
                return ids[:length]
    raise SystemExit(f"{path}: no document of {length} tokens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="an exported LAWCAT student (config.json, model.safetensors, tokenizer.model)")
    ap.add_argument("--text", required=True, help="JSON lines (.jsonl or .jsonl.xz) with a text field")
    ap.add_argument("--length", type=int, default=32768)
    ap.add_argument("--bucket", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_student(a.model)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.model, "tokenizer.model"))
    ids = torch.tensor([long_document(a.text, sp, a.length)])
    layers = [l.self_attn for l in model.model.layers if hasattr(l.self_attn, "chunk")]
    configured = layers[0].chunk
    out = {}
    for name, chunk in (("chunked", configured), ("recurrent", 1)):
        for l in layers:
            l.chunk = chunk
        with torch.no_grad():
            out[name] = model(ids).logits[0].float()
    nll = {k: torch.nn.functional.cross_entropy(v[:-1], ids[0, 1:], reduction="none") for k, v in out.items()}
    diff = (out["chunked"] - out["recurrent"]).abs()
    print(f"{a.model}: {a.length} tokens, chunks of {configured} vs 1 token (float32)")
    print(f"max |logit difference| {diff.max().item():.3e} (logit scale: max |logit| {out['chunked'].abs().max().item():.1f})")
    print("bucket end | NLL chunked | NLL recurrent | max |logit diff| in the bucket")
    for s in range(0, a.length - 1, a.bucket):
        e = min(s + a.bucket, a.length - 1)
        print(f"{e + 1:>10} | {nll['chunked'][s:e].mean().item():.5f} | {nll['recurrent'][s:e].mean().item():.5f} | "
              f"{diff[s:e].max().item():.3e}")


if __name__ == "__main__":
    main()
