#!/usr/bin/env python3
"""Ordinary text with long-range verbatim repeats, for stage-1 data (issue 13's data fix).

Why: the teacher's retrieval is an induction circuit whose copying head fires only where a
passage repeats; plain Gutenberg / Wikipedia text has few exact repeats hundreds of tokens
apart, so the attention MSE barely asks the student for a sharp far lookup. Each record here is
~700 words of one training document in which a few spans of it are repeated verbatim later, at a
distance of 50-550 words: still ordinary text (no task format, no prompts), but with copies.

  python3 scripts/make_repeats.py --out runs/repro/tasks/repeats.jsonl \
      ../shared/data/corpora/gutenberg/gutenberg_train.jsonl.xz ../shared/data/corpora/wikipedia/wikipedia_train.jsonl.xz

Output: JSON lines with a "text" field (what `data.train` reads). Deterministic for a --seed.
"""
import argparse
import gzip
import json
import lzma
import os
import random


def documents(path, field):
    opener = lzma.open if path.endswith(".xz") else gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)[field]
            except (ValueError, KeyError) as e:
                raise SystemExit(f"make_repeats: {path}:{n}: bad record ({e})")


def with_repeats(words, rng, repeats, min_span, max_span, min_gap, max_gap):
    """Inserts `repeats` copies of earlier spans of `words` later in it (positions in the original)."""
    inserts = []  # (position to insert before, span)
    for _ in range(repeats):
        span = rng.randint(min_span, max_span)
        gap = rng.randint(min_gap, max_gap)
        if span + gap >= len(words):
            continue
        src = rng.randint(0, len(words) - span - gap)
        inserts.append((src + span + gap, words[src:src + span]))
    out, at = [], 0
    for pos, span in sorted(inserts, key=lambda x: x[0]):
        out += words[at:pos] + span
        at = pos
    return out + words[at:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="JSON-lines corpora (.jsonl, .jsonl.xz, .jsonl.gz)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--field", default="text")
    ap.add_argument("--count", type=int, default=6000, help="records to write")
    ap.add_argument("--words", type=int, default=650, help="words of source text per record")
    ap.add_argument("--repeats", type=int, default=3, help="copied spans per record")
    ap.add_argument("--span", type=int, nargs=2, default=[12, 48], metavar=("MIN", "MAX"), help="words per copied span")
    ap.add_argument("--gap", type=int, nargs=2, default=[50, 550], metavar=("MIN", "MAX"), help="words between a span and its copy")
    ap.add_argument("--per-doc", type=int, default=20, help="records at most from one document (spread over many)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    streams = [documents(p, a.field) for p in a.inputs]
    try:
        written = write_records(a, rng, streams)
    except BaseException:
        if os.path.exists(a.out + ".tmp"):
            os.remove(a.out + ".tmp")  # nothing half-written is left behind
        raise
    if written < a.count:
        print(f"make_repeats: the corpora ran out after {written} of {a.count} records")
    if written == 0:
        os.remove(a.out + ".tmp")
        raise SystemExit(f"make_repeats: no text in {', '.join(a.inputs)}")
    os.replace(a.out + ".tmp", a.out)
    print(f"make_repeats: {written} records -> {a.out}")


def write_records(a, rng, streams):
    """Writes up to a.count records to a.out + ".tmp"; returns how many."""
    written = 0
    with open(a.out + ".tmp", "w", encoding="utf-8") as out:
        while written < a.count and streams:
            for s in list(streams):  # round-robin over the corpora
                doc = next(s, None)
                if doc is None:
                    streams.remove(s)
                    continue
                words = doc.split()
                starts = list(range(0, len(words) - a.words // 2, a.words))
                if len(starts) > a.per_doc:
                    starts = sorted(rng.sample(starts, a.per_doc))
                for start in starts:
                    piece = words[start:start + a.words]
                    text = " ".join(with_repeats(piece, rng, a.repeats, *a.span, *a.gap))
                    out.write(json.dumps({"text": text}) + "\n")
                    written += 1
                    if written >= a.count:
                        break
                if written >= a.count:
                    break
    return written


if __name__ == "__main__":
    main()
