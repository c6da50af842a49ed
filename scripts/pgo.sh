#!/usr/bin/env bash
# Profile-guided release build. An instrumented build runs lakehose over
# generated events (some broken, some repeated, so the error and duplicate
# paths get their share), and the release build is then optimised with the
# profile that run recorded. Prints the optimised binary's path last, on
# stdout; everything else goes to stderr.
# usage: scripts/pgo.sh   (env: CARGO_TARGET_DIR, PGO_EVENTS=200000)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-$HOME/.cache/lakehose-target}
EVENTS=${PGO_EVENTS:-200000}
WORK=$T/pgo
mkdir -p "$WORK"

# llvm-profdata must match rustc's LLVM: rustup's llvm-tools has it.
host=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$PROFDATA" ]; then
  echo "pgo: installing rustup's llvm-tools for llvm-profdata ..." >&2
  rustup component add llvm-tools >&2 || {
    echo "pgo: no $PROFDATA and 'rustup component add llvm-tools' failed; 'make release' builds without a profile" >&2
    exit 1
  }
fi

# 1. The instrumented build, in a target directory of its own: its flags
#    differ from every other build's, and sharing one would rebuild both.
RUSTFLAGS="-Cprofile-generate=$WORK/raw" CARGO_TARGET_DIR="$T/pgo-gen" \
  cargo build --release --bin lakehose >&2
gen=$T/pgo-gen/release/lakehose

# 2. Training, only when the instrumented binary is newer than the profile.
#    The events come from lakehose's own generator (mixed timestamp forms,
#    3% broken, 1% repeated), not from the benchmark's file.
if [ ! -s "$WORK/merged.profdata" ] || [ "$gen" -nt "$WORK/merged.profdata" ]; then
  rm -rf "$WORK/raw" "$WORK/lake"
  "$gen" gen taxi --count "$EVENTS" --bad 0.03 --dup 0.01 --seed 11 -o "$WORK/train.ndjson" >&2
  LAKEHOSE_MASK_KEY=pgo-training "$gen" run --input "$WORK/train.ndjson" --lake "$WORK/lake" \
    --schemas schemas -q >&2
  "$PROFDATA" merge -o "$WORK/merged.profdata" "$WORK/raw"
  rm -rf "$WORK/raw" "$WORK/lake" "$WORK/train.ndjson"
fi

# 3. The optimised build. Cargo does not watch the profile's content, so
#    its hash goes into the flags: a new profile rebuilds, the same one not.
sum=$(sha256sum "$WORK/merged.profdata" | cut -c1-16)
[ -f "$WORK/$sum.profdata" ] || {
  rm -f "$WORK"/????????????????.profdata
  cp "$WORK/merged.profdata" "$WORK/$sum.profdata"
}
RUSTFLAGS="-Cprofile-use=$WORK/$sum.profdata" CARGO_TARGET_DIR="$T/pgo-use" \
  cargo build --release --bin lakehose >&2
echo "$T/pgo-use/release/lakehose"
