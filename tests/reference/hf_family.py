#!/usr/bin/env python3
"""Tiny random teachers of the Qwen2 / Qwen3 / SmolLM2 families written by Hugging Face
`transformers` itself, and their float32 logits and NLL, for tests/model/test_teacher_families.cpp:
the independent reference for lawcat's loader, attention (biases, q/k norms, sliding window) and
byte-level BPE tokenizers.

  python hf_family.py DIR1 DIR2 ...

Each DIR holds spec.json:
  {"model_type": "qwen2" | "qwen3" | "llama",   transformers' config class
   "config": {...},                              its keyword arguments (vocab_size comes from the
                                                 tokenizer when there is one)
   "tokenizer": null | "qwen2" | "smollm2",      a byte-level BPE tokenizer.json trained here:
                                                 qwen2: NFC + Split(Qwen2 regex) + ByteLevel(use_regex
                                                 false), bos_token null; smollm2: Digits + ByteLevel
                                                 (GPT-2 regex), bos = eos = <|endoftext|> (id 0), no
                                                 BOS added
   "ids": [[...], ...],                          equal-length rows (ids < vocab_size)
   "texts": [...],                               strings to tokenize (with a tokenizer)
   "seed": int}
and gets: config.json + model.safetensors (save_pretrained; weights randomized so that biases and
norms matter), tokenizer files, and hf_out.safetensors with
  logits   [B, T, V] of "ids" (eager attention)
  nll      [B] mean next-token NLL of each row
  doc_nll  [2]: the NLL sum and the token count of "texts" as `lawcat ppl` scores documents
           (tokenizer's ids with its own special tokens; the lead token bos_token_id when the
           tokenizer adds no BOS)
and hf_tokens.json: {"ids": [[...] per text]} (tokenizer(text)["input_ids"]).

  python hf_family.py --same ORIG EXPORT ...

loads each pair of directories with AutoModelForCausalLM (transformers' own class for the
config.json, float32, eager), prints the class and the max abs difference of their logits on
ORIG/spec.json's ids, and exits 1 when the classes differ or the difference exceeds 1e-4 (lawcat's
re-export of a teacher must load in transformers as the same model).
"""
import json
import math
import os
import sys

import torch

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.",
    "One day, she saw a big red ball in the park. \"Can I play with it?\" she asked her mom.",
    "The numbers 12345 and 3.14159 were written on the wall, next to 2024-01-31.",
    "Café, naïve, jalapeño; Straße. Москва. 東京は日本の首都です。 😀 👍🏽",
    "I'm sure you'll see they've said it's what we'd do.\n\nTabs\tand  spaces   here.",
]


def train_tokenizer(kind, out_dir):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if kind == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    if kind == "qwen2":
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|endoftext|>",
                                       pad_token="<|endoftext|>")
    else:
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                       unk_token="<|endoftext|>")
    fast.save_pretrained(out_dir)
    # The published tokenizer_config.json files say it explicitly (Qwen2.5: "bos_token": null).
    cfg_path = os.path.join(out_dir, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    cfg["bos_token"] = None if kind == "qwen2" else "<|endoftext|>"
    cfg.pop("add_bos_token", None)
    json.dump(cfg, open(cfg_path, "w"), indent=2)
    return PreTrainedTokenizerFast.from_pretrained(out_dir)


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if "norm" in name:
                p.copy_(1.0 + 0.2 * r)
            elif name.endswith(".bias"):
                p.copy_(0.3 * r)
            elif "embed" in name:
                p.copy_(0.5 * r)
            else:
                p.copy_(r / math.sqrt(p.shape[1]))


def same(pairs):
    from transformers import AutoModelForCausalLM

    ok = True
    for a, b in zip(pairs[::2], pairs[1::2]):
        ids = torch.tensor(json.load(open(os.path.join(a, "spec.json")))["ids"], dtype=torch.long)
        ma = AutoModelForCausalLM.from_pretrained(a, dtype=torch.float32, attn_implementation="eager").eval()
        mb = AutoModelForCausalLM.from_pretrained(b, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            diff = (ma(ids).logits - mb(ids).logits).abs().max().item()
        print(f"{b}: {type(mb).__name__} vs {type(ma).__name__}, max abs logit difference {diff:.3g}")
        ok = ok and type(ma) is type(mb) and diff <= 1e-4
    sys.exit(0 if ok else 1)


def main():
    if sys.argv[1] == "--same":
        return same(sys.argv[2:])
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.set_num_threads(1)
    for d in sys.argv[1:]:
        spec = json.load(open(os.path.join(d, "spec.json")))
        cfg_kw = dict(spec["config"])
        tok = None
        if spec.get("tokenizer"):
            tok = train_tokenizer(spec["tokenizer"], d)
            eot = tok.convert_tokens_to_ids("<|endoftext|>")
            cfg_kw.update(vocab_size=len(tok), bos_token_id=eot, eos_token_id=eot)
        config = AutoConfig.for_model(spec["model_type"], **cfg_kw)
        torch.manual_seed(spec.get("seed", 0))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        randomize(model, spec.get("seed", 0))
        model.save_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        out = {}
        with torch.no_grad():
            ids = torch.tensor(spec["ids"], dtype=torch.long)
            logits = model(ids).logits.float()
            out["logits"] = logits.contiguous()
            lp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            out["nll"] = (-lp.mean(-1)).contiguous()
            if tok is not None:
                encoded = [tok(t)["input_ids"] for t in spec.get("texts", [])]
                json.dump({"ids": encoded}, open(os.path.join(d, "hf_tokens.json"), "w"))
                total, count = 0.0, 0
                for e in encoded:
                    doc = e if (tok.bos_token_id is not None and e[:1] == [tok.bos_token_id]) else \
                        [tok.bos_token_id if tok.bos_token_id is not None else config.bos_token_id] + e
                    x = torch.tensor([doc])
                    lg = model(x).logits.float()[0, :-1].log_softmax(-1)
                    total += -lg.gather(-1, x[0, 1:, None]).sum().item()
                    count += len(doc) - 1
                out["doc_nll"] = torch.tensor([total, float(count)], dtype=torch.float64)
        save_file(out, os.path.join(d, "hf_out.safetensors"))


if __name__ == "__main__":
    main()
