#!/usr/bin/env python3
"""Greedy decoding speed and resident memory of Hugging Face transformers at one context length:
the anchor a user would otherwise run, measured beside `lawcat bench decode` on the same cores
(scripts/bench_decode.sh runs both).

Same protocol as lawcat's: T random token ids (seeded), one prefill with the KV cache on (timed
once), `--decode-warmup` untimed greedy steps, then `--decode-tokens` timed greedy steps through
the cache; the process's resident memory (VmRSS, VmHWM) after them.

  python3 scripts/bench_decode_hf.py --model ../shared/data/models/retriever13m --length 1024 --threads 2
"""
import argparse
import inspect
import json
import time

import torch
from transformers import AutoModelForCausalLM


def resident_mib():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
    return out.get("VmRSS", -1.0), out.get("VmHWM", -1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--length", type=int, required=True, help="context tokens before decoding")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--decode-warmup", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the row here as JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    ids = torch.randint(0, model.config.vocab_size, (1, a.length), generator=torch.Generator().manual_seed(a.seed))
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        prefill_s = time.perf_counter() - t0
        # transformers 5.x renamed `past_key_values` to `cache` (the old name still works, with a warning)
        cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        past = getattr(out, cache_arg)
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)  # [1, 1]

        def step(nxt, past):
            o = model(input_ids=nxt, use_cache=True, **{cache_arg: past})
            return o.logits[:, -1].argmax(-1, keepdim=True), getattr(o, cache_arg)

        for _ in range(a.decode_warmup):
            nxt, past = step(nxt, past)
        t0 = time.perf_counter()
        for _ in range(a.decode_tokens):
            nxt, past = step(nxt, past)
        decode_s = time.perf_counter() - t0
    rss, peak = resident_mib()
    row = {"kind": "transformers", "T": a.length, "prefill_s": prefill_s,
           "decode_tokens_per_s": a.decode_tokens / decode_s, "decode_ms_per_token": 1e3 * decode_s / a.decode_tokens,
           "rss_mib": rss, "peak_rss_mib": peak, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "transformers": __import__("transformers").__version__}
    print(json.dumps(row))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(row, f, indent=2)


if __name__ == "__main__":
    main()
