#!/usr/bin/env bash
# lakehose vs the DuckDB anchor on the same 1,000,000-event file, same machine,
# same run, alternating, RUNS times each; prints each run and the medians.
# Two lakehose builds take part: the release build (`make release`, optimised
# with the repository's profile, see scripts/pgo.sh) and the same build
# without the profile, to show what the profile is worth (PLAIN=0 leaves it out).
# usage: scripts/bench.sh   (env: COUNT=1000000 RUNS=3 MEMORY_CAP_MIB=512 PLAIN=1)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
RUNS=${RUNS:-3}
CAP=${MEMORY_CAP_MIB:-512}
T=${CARGO_TARGET_DIR:-$HOME/.cache/lakehose-target}
OUT=bench-out
SHARED=../shared/bench
mkdir -p "$OUT"

echo "release build (scripts/pgo.sh build) ..."
BIN=$(scripts/pgo.sh build 2> "$OUT/build.log" | tail -1) || { cat "$OUT/build.log"; exit 1; }
# Its notes (no profile for this toolchain, source changed since the profile).
grep '^pgo:' "$OUT/build.log" || true
PLAIN_BIN=
if [ "${PLAIN:-1}" = 1 ]; then
  echo "the same build without the profile (scripts/pgo.sh plain) ..."
  PLAIN_BIN=$(scripts/pgo.sh plain 2> "$OUT/plain.log" | tail -1) || { cat "$OUT/plain.log"; exit 1; }
fi
PY=$OUT/venv/bin/python
"$PY" -c 'import duckdb' 2>/dev/null || scripts/pyvenv.sh "$OUT/venv" scripts/bench-requirements.txt

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
# Every run, of either tool, writes into a directory of its own, and all are
# deleted only after the last run. This file system (ext4 without a journal)
# skips inodes freed in the last 30 s when it creates files, reading each
# one's inode block to tell: with the previous run's ~900 files deleted just
# before, creating the next run's took 2-12% of that run's CPU samples
# (`find_inode_bit`, `recently_deleted`). A lake is not wiped seconds before
# it is written in production, and DuckDB's anchor (which deletes its own
# output first) paid the same; now neither tool does.
RUNS_DIR=$OUT/runs
rm -rf "$RUNS_DIR"
mkdir -p "$RUNS_DIR"
trap 'rm -rf "$RUNS_DIR"' EXIT
run_lakehose() { # label, binary, run number: one run, checked to have written every event
  local lake=$RUNS_DIR/$1-$3
  rm -f "$OUT/summary.json"
  measure "$1" env LAKEHOSE_MASK_KEY=bench-key "$2" run --input "$IN" --lake "$lake" \
    --schemas schemas --memory-cap "$CAP" -q --summary-json "$OUT/summary.json" | tee -a "$results"
  written=$(python3 -c "import json;print(json.load(open('$OUT/summary.json'))['written'])")
  [ "$written" = "$COUNT" ] || { echo "$1 wrote $written rows, expected $COUNT"; exit 1; }
}
for i in $(seq 1 "$RUNS"); do
  run_lakehose lakehose "$BIN" "$i"
  [ -z "$PLAIN_BIN" ] || run_lakehose lakehose-plain "$PLAIN_BIN" "$i"
  measure duckdb "$PY" "$SHARED/anchor_duckdb.py" "$IN" "$RUNS_DIR/duck-$i" 2 | tee -a "$results"
done

python3 - "$results" "$COUNT" "$SIZE" "$CAP" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
n, size, cap = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
labels = [l for l in ("lakehose", "lakehose-plain", "duckdb") if any(r[0] == l for r in rows)]
def med(label, i): return st.median(float(r[i]) for r in rows if r[0] == label)
print(f"\nmedians of {sum(r[0] == 'duckdb' for r in rows)} runs each")
print(f"{'':14}{'wall s':>8}{'records/s':>12}{'MB/s':>8}{'peak RSS MiB':>14}")
for name in labels:
    w, r = med(name, 1), med(name, 2) / 1024
    print(f"{name:14}{w:8.2f}{n / w:12,.0f}{size / 1e6 / w:8.1f}{r:14.0f}")
for name in labels[:-1]:
    print(f"{name}/duckdb throughput: {med('duckdb', 1) / med(name, 1):.2f}x; "
          f"peak RSS vs cap+64 MiB: {med(name, 2) / 1024:.0f} / {cap + 64} MiB")
PY
