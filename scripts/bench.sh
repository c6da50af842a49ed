#!/usr/bin/env bash
# lakehose vs the DuckDB anchor on the same 1,000,000-event file, same machine,
# same run, alternating, RUNS times each; prints each run and the medians.
# usage: scripts/bench.sh   (env: COUNT=1000000 RUNS=3 MEMORY_CAP_MIB=256)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
RUNS=${RUNS:-3}
CAP=${MEMORY_CAP_MIB:-512}
T=${CARGO_TARGET_DIR:-$HOME/.cache/lakehose-target}
BIN=$T/release/lakehose
OUT=bench-out
SHARED=../shared/bench
mkdir -p "$OUT"

[ -x "$BIN" ] || cargo build --release
if [ ! -d "$OUT/venv" ]; then
  python3 -m venv "$OUT/venv"
  "$OUT/venv/bin/pip" install -q -r scripts/bench-requirements.txt
fi
PY=$OUT/venv/bin/python

IN=$OUT/taxi-$COUNT.ndjson
if [ ! -s "$IN" ]; then
  if [ -f "$SHARED/gen_taxi.py" ]; then
    echo "generating $COUNT clean events with $SHARED/gen_taxi.py ..."
    python3 "$SHARED/gen_taxi.py" "$COUNT" --seed 42 > "$IN.tmp"
  else
    "$BIN" gen taxi --count "$COUNT" --iso-ts --seed 42 -o "$IN.tmp"
  fi
  mv "$IN.tmp" "$IN"
fi
SIZE=$(stat -c %s "$IN")
echo "input: $IN ($COUNT events, $((SIZE / 1000000)) MB), $(nproc) cores, memory cap $CAP MiB"

measure() { # label, command...: prints "label wall_s maxrss_kb"
  local label=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" > "$OUT/$label.log" 2>&1 || { cat "$OUT/$label.log"; exit 1; }
  read -r wall rss < "$OUT/time.txt"
  echo "$label $wall $rss"
}

results=$OUT/results.txt
: > "$results"
for i in $(seq 1 "$RUNS"); do
  rm -rf "$OUT/lake"
  measure lakehose env LAKEHOSE_MASK_KEY=bench-key "$BIN" run --input "$IN" --lake "$OUT/lake" \
    --schemas schemas --memory-cap "$CAP" -q --summary-json "$OUT/summary.json" | tee -a "$results"
  measure duckdb "$PY" "$SHARED/anchor_duckdb.py" "$IN" "$OUT/duck" 2 | tee -a "$results"
done
written=$(python3 -c "import json;print(json.load(open('$OUT/summary.json'))['written'])")
[ "$written" = "$COUNT" ] || { echo "lakehose wrote $written rows, expected $COUNT"; exit 1; }

python3 - "$results" "$COUNT" "$SIZE" "$CAP" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
n, size, cap = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def med(label, i): return st.median(float(r[i]) for r in rows if r[0] == label)
lw, dw = med("lakehose", 1), med("duckdb", 1)
lr, dr = med("lakehose", 2) / 1024, med("duckdb", 2) / 1024
print(f"\nmedians of {sum(r[0]=='lakehose' for r in rows)} runs each")
print(f"{'':10}{'wall s':>8}{'records/s':>12}{'MB/s':>8}{'peak RSS MiB':>14}")
for name, w, r in (("lakehose", lw, lr), ("duckdb", dw, dr)):
    print(f"{name:10}{w:8.2f}{n / w:12,.0f}{size / 1e6 / w:8.1f}{r:14.0f}")
print(f"lakehose/duckdb throughput: {dw / lw:.2f}x; lakehose peak RSS vs cap+64 MiB: {lr:.0f} / {cap + 64} MiB")
PY
