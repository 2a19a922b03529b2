#!/usr/bin/env bash
# Is LAWCAT's CPU decode speed flat in context? One `bench decode` process per (round, T), the
# lengths interleaved round by round so that drift of a shared VM lands on every T alike, the
# prompt prefilled in chunks (memory flat), then the median / min / max tokens/s per T over the
# rounds and the spread of the medians (max / min - 1) against the 10 % of issue 16.
#
#   scripts/bench_decode_flat.sh                       # retriever13m, 1K 4K 16K 32K, 5 rounds
#   ROUNDS=3 LENGTHS=1024,32768 scripts/bench_decode_flat.sh <model dir>
#
# Environment: LAWCAT_BIN, LENGTHS, ROUNDS (5), THREADS (2), TOKENS (256), WARMUP (8),
# PREFILL_CHUNK (1024), JSON (write rounds + summary there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="${1:-$ROOT/../shared/data/models/retriever13m}"
B="${LAWCAT_BIN:-$ROOT/build/lawcat}"
LENGTHS="${LENGTHS:-1024,4096,16384,32768}"
ROUNDS="${ROUNDS:-5}"
[[ -x "$B" ]] || { echo "bench_decode_flat: $B not found (build first: scripts/setup.sh)" >&2; exit 1; }
[[ -f "$MODEL/config.json" ]] || { echo "bench_decode_flat: no model at $MODEL (config.json missing)" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
for ((r = 0; r < ROUNDS; ++r)); do
  for T in ${LENGTHS//,/ }; do
    echo "[bench_decode_flat] round $r T=$T" >&2
    "$B" bench decode --model "$MODEL" --lengths "$T" --no-softmax --threads "${THREADS:-2}" \
      --decode-tokens "${TOKENS:-256}" --decode-warmup "${WARMUP:-8}" --prefill-chunk "${PREFILL_CHUNK:-1024}" \
      --seed "$r" --device cpu --json "$TMP/r${r}_$T.json" > /dev/null
  done
done
python3 - "$TMP" "$LENGTHS" "$ROUNDS" "${JSON:-}" <<'PYEOF'
import json, statistics, sys
tmp, lengths, rounds, out = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], int(sys.argv[3]), sys.argv[4]
per_t = {T: [json.load(open(f"{tmp}/r{r}_{T}.json"))["rows"][0]["decode_tokens_per_s"] for r in range(rounds)]
         for T in lengths}
print("| T | LAWCAT tok/s median | min | max | rounds |")
print("|---|---|---|---|---|")
for T, v in per_t.items():
    print(f"| {T} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
med = [statistics.median(v) for v in per_t.values()]
spread = max(med) / min(med) - 1
print(f"spread of the medians: {100 * spread:.1f} % ({'within' if spread <= 0.10 else 'NOT within'} 10 %)")
if out:
    json.dump({"rounds": per_t, "medians": dict(zip(per_t, med)), "spread": spread}, open(out, "w"), indent=1)
PYEOF
