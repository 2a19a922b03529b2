#!/usr/bin/env python3
"""The public speed anchor of docs/kernels.md: flash-linear-attention's Triton `chunk_gla` (the GLA
kernel the paper's code calls) at LAWCAT's attention shapes, with values of dim d (V = d: the state
LAWCAT keeps; the older anchor padded values to [v, 1], V = d + 1, to get the normalizer), and
SDPA (causal, FlashAttention-2 class) beside it. B 1, H heads, bf16 q / k / v, fp32 log-gate
logsigmoid(x) / 16, scale 1. GLA alone: no conv, no feature map, no gate projection, no
normalizer, so it does less work than `lawcat bench attention`'s fused LAWCAT core.

Timing: CUDA events around each call, warm-up calls first (Triton autotunes there), then the
median of --reps calls, each on a fresh random input set drawn outside the timed region.

Usage (flash-linear-attention importable, e.g. PYTHONPATH=<its source>; transformers not needed):
  python3 scripts/bench_fla_anchor.py --seqlens 1024,4096,16384,65536 --json fla_anchor.json
"""
import argparse
import json
import statistics
import sys

import torch
import torch.nn.functional as F

SHAPES = {"1B": 64, "7B": 128}  # Llama-3.2-1B heads (d 64), Mistral-7B heads (d 128)


def inputs(T, H, d, dv, requires_grad):
    q, k = (torch.randn(1, T, H, d, device="cuda", dtype=torch.bfloat16) * 0.1 for _ in range(2))
    v = torch.randn(1, T, H, dv, device="cuda", dtype=torch.bfloat16)
    g = F.logsigmoid(torch.randn(1, T, H, d, device="cuda", dtype=torch.float32) + 4.0) / 16.0
    for t in (q, k, v, g):
        t.requires_grad_(requires_grad)
    return q, k, v, g


def timed(fn, make, warmup, reps):
    """Median ms of fn(*make()) over reps fresh inputs, after warm-up calls."""
    for _ in range(warmup):
        fn(*make())
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        args = make()
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*args)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
        del args
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="1B,7B")
    p.add_argument("--seqlens", default="1024,2048,4096,8192,16384,32768,65536")
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", default="")
    a = p.parse_args()
    try:
        from fla.ops.gla import chunk_gla
        import fla
    except ImportError as e:
        sys.exit(f"bench_fla_anchor: flash-linear-attention is not importable ({e}); put its source on PYTHONPATH")

    def gla_fwd(q, k, v, g):
        with torch.no_grad():
            chunk_gla(q, k, v, g, scale=1.0)

    def gla_fb(q, k, v, g):
        o, _ = chunk_gla(q, k, v, g, scale=1.0)
        o.backward(torch.ones_like(o))

    def sdpa_fwd(q, k, v, g):
        with torch.no_grad():
            F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)

    def sdpa_fb(q, k, v, g):
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        o.backward(torch.ones_like(o))

    rows = []
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, fla {getattr(fla, '__version__', '?')}, "
          f"B 1, H {a.heads}, bf16, median of {a.reps} (ms)")
    print("| shape | T | fla fwd (V=d) | fla f+b (V=d) | SDPA fwd | SDPA f+b |")
    print("|---|---|---|---|---|---|")
    for shape in a.shapes.split(","):
        d = SHAPES[shape]
        for T in (int(x) for x in a.seqlens.split(",")):
            r = {"shape": shape, "T": T, "heads": a.heads, "head_dim": d}
            r["fla_fwd_ms"] = timed(gla_fwd, lambda: inputs(T, a.heads, d, d, False), a.warmup, a.reps)
            r["fla_fwd_bwd_ms"] = timed(gla_fb, lambda: inputs(T, a.heads, d, d, True), a.warmup, a.reps)
            r["sdpa_fwd_ms"] = timed(sdpa_fwd, lambda: inputs(T, a.heads, d, d, False), a.warmup, a.reps)
            r["sdpa_fwd_bwd_ms"] = timed(sdpa_fb, lambda: inputs(T, a.heads, d, d, True), a.warmup, a.reps)
            rows.append(r)
            print(f"| {shape} | {T} | {r['fla_fwd_ms']:.3f} | {r['fla_fwd_bwd_ms']:.3f} | "
                  f"{r['sdpa_fwd_ms']:.3f} | {r['sdpa_fwd_bwd_ms']:.3f} |", flush=True)
    if a.json:
        meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                "fla": getattr(fla, "__version__", "?"), "reps": a.reps, "warmup": a.warmup}
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
