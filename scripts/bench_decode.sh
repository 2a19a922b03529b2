#!/usr/bin/env bash
# The edge, measured: greedy decoding on the CPU at long contexts for a softmax teacher, its
# LAWCAT student and Hugging Face transformers running the same teacher, on the same threads.
# Each (model, T) runs in its own process, so its resident memory belongs to that context alone.
#
#   scripts/bench_decode.sh                                  # retriever13m, T = 1K 4K 16K 32K, 2 threads
#   LENGTHS=1024,4096 THREADS=2 TOKENS=64 scripts/bench_decode.sh ../shared/data/models/retriever13m
#
# The LAWCAT rows are the teacher with its attention swapped (model/swap.h) and the swap's initial
# LAWCAT weights: decode cost does not depend on trained values. Writes $OUT/bench_decode.{json,md}
# (default OUT=docs) and prints the table. Environment: LAWCAT_BIN (build/lawcat), LAWCAT_PYTHON
# (the setup's virtualenv python, for transformers), LENGTHS, THREADS, TOKENS, WARMUP, OUT, and
# PREFILL_CHUNK (lawcat prefills the prompt in chunks of this many tokens; 0: one pass; the
# transformers anchor always prefills in one pass).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="${1:-$ROOT/../shared/data/models/retriever13m}"
B="${LAWCAT_BIN:-$ROOT/build/lawcat}"
PY="${LAWCAT_PYTHON:-$HOME/.cache/lawcat/venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
LENGTHS="${LENGTHS:-1024,4096,16384,32768}"
THREADS="${THREADS:-2}"
TOKENS="${TOKENS:-64}"
WARMUP="${WARMUP:-4}"
PREFILL_CHUNK="${PREFILL_CHUNK:-0}"
OUT="${OUT:-$ROOT/docs}"
[[ -x "$B" ]] || { echo "bench_decode: $B not found (build first: scripts/setup.sh)" >&2; exit 1; }
[[ -f "$MODEL/config.json" ]] || { echo "bench_decode: no model at $MODEL (config.json missing)" >&2; exit 1; }
"$PY" -c "import transformers" 2>/dev/null || { echo "bench_decode: $PY has no transformers (set LAWCAT_PYTHON)" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
for T in ${LENGTHS//,/ }; do
  for kind in softmax lawcat; do
    other=lawcat; [[ $kind == lawcat ]] && other=softmax
    echo "[bench_decode] lawcat $kind T=$T" >&2
    "$B" bench decode --model "$MODEL" --lengths "$T" --no-$other --threads "$THREADS" --decode-tokens "$TOKENS" \
      --decode-warmup "$WARMUP" --prefill-chunk "$PREFILL_CHUNK" --device cpu --json "$TMP/${kind}_$T.json" > "$TMP/${kind}_$T.txt"
  done
  echo "[bench_decode] transformers T=$T" >&2
  "$PY" "$ROOT/scripts/bench_decode_hf.py" --model "$MODEL" --length "$T" --threads "$THREADS" \
    --decode-tokens "$TOKENS" --decode-warmup "$WARMUP" --json "$TMP/hf_$T.json" > /dev/null
done
"$PY" - "$TMP" "$OUT" "$MODEL" "$LENGTHS" "$THREADS" "$TOKENS" "$PREFILL_CHUNK" <<'PYEOF'
import json, os, platform, sys
tmp, out, model, lengths, threads, tokens, chunk = sys.argv[1:]
rows = []
for T in [int(t) for t in lengths.split(",")]:
    r = {"T": T}
    for kind in ("softmax", "lawcat"):
        j = json.load(open(os.path.join(tmp, f"{kind}_{T}.json")))
        row = j["rows"][0]
        r[kind] = {k: row.get(k) for k in ("decode_tokens_per_s", "rss_mib", "peak_rss_mib", "state_mib", "prefill_ms")}
        r["device"] = j["device"]
    r["transformers"] = json.load(open(os.path.join(tmp, f"hf_{T}.json")))
    rows.append(r)
doc = {"model": model, "threads": int(threads), "decode_tokens": int(tokens), "prefill_chunk": int(chunk),
       "cpu": platform.processor() or platform.machine(),
       "rows": rows}
json.dump(doc, open(os.path.join(out, "bench_decode.json"), "w"), indent=2)
f = lambda x, p=1: "-" if x is None else f"{x:.{p}f}"
lines = [f"model {model}, {threads} threads, {tokens} timed greedy tokens after a prefill of T random tokens"
         + (f" (lawcat: in chunks of {chunk})" if int(chunk) > 0 else ""),
         "", "| T | lawcat softmax tok/s | LAWCAT tok/s | transformers tok/s | LAWCAT / softmax | transformers / lawcat softmax "
         "| peak RSS MiB softmax / LAWCAT / transformers | state MiB softmax / LAWCAT |", "|---|---|---|---|---|---|---|---|"]
for r in rows:
    s, l, h = r["softmax"], r["lawcat"], r["transformers"]
    lines.append(f"| {r['T']} | {f(s['decode_tokens_per_s'])} | {f(l['decode_tokens_per_s'])} | {f(h['decode_tokens_per_s'])} "
                 f"| {l['decode_tokens_per_s'] / s['decode_tokens_per_s']:.2f}x | {h['decode_tokens_per_s'] / s['decode_tokens_per_s']:.2f}x "
                 f"| {f(s['peak_rss_mib'], 0)} / {f(l['peak_rss_mib'], 0)} / {f(h['peak_rss_mib'], 0)} | {f(s['state_mib'], 2)} / {f(l['state_mib'], 2)} |")
open(os.path.join(out, "bench_decode.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"wrote {out}/bench_decode.json, {out}/bench_decode.md")
PYEOF
