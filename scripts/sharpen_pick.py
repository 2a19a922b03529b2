#!/usr/bin/env python3
"""Pick the feature-map scale of repro.sh's sharpen stage from the tuning evals.

Each scale s was scored by `lawcat eval --task passkey --out <dir>/eval_x<s>` on the tuning seed;
its score is the mean over passkey.json's cells weighted by their scored samples (error records
are already left out there). A scale without a readable passkey.json, or with no scored sample, is
left out. Prints the pick, nothing when no scale was scored.

  best        the best mean; of equal means the smallest scale (the default)
  smallest95  the smallest scale whose mean is within 95 % of the best: less perplexity for a
              little reach (docs/results/NOTES.md, seventh round)

  python3 scripts/sharpen_pick.py --rule best runs/repro/sharpen/<student> 2 3 4 6 8
"""
import argparse
import json
import os


def mean_score(path):
    try:
        with open(path) as f:
            cells = json.load(f)["cells"]
        n = sum(c["samples"] for c in cells)
        return sum(c["score"] * c["samples"] for c in cells if c["samples"]) / n if n else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pick(means, rule):
    """means: scale (str) -> mean, any order. Returns the picked scale or None."""
    if not means:
        return None
    scales = sorted(means, key=float)
    top = max(means.values())
    if rule == "best":
        return next(s for s in scales if means[s] == top)
    return next(s for s in scales if means[s] >= 0.95 * top)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rule", choices=["best", "smallest95"], default="best")
    ap.add_argument("dir", help="the sharpen stage's folder of one student (eval_x<s>/passkey.json inside)")
    ap.add_argument("scales", nargs="+")
    a = ap.parse_args()
    means = {}
    for s in a.scales:
        m = mean_score(os.path.join(a.dir, f"eval_x{s}", "passkey.json"))
        if m is not None:
            means[s] = m
    p = pick(means, a.rule)
    if p is not None:
        print(p)


if __name__ == "__main__":
    main()
