#!/usr/bin/env bash
# Profile-guided optimisation with a profile kept in the repository.
#
#   scripts/pgo.sh build   the release build (`make release`), optimised with
#                          pgo/lakehose.profdata when this rustc can use it;
#                          one ordinary build, no training. Prints the binary.
#   scripts/pgo.sh plain   the release build without the profile, in a target
#                          directory of its own (the bench's comparison).
#   scripts/pgo.sh record  re-records the profile (`make pgo-profile`): an
#                          instrumented build runs over generated events (3%
#                          broken, 1% repeated, so the error and duplicate
#                          paths get their share) and its counters become
#                          pgo/lakehose.profdata and pgo/profile.env.
#
# The profile is LLVM's indexed format, which only an LLVM of the same major
# version is sure to read: `build` checks pgo/profile.env and builds without
# the profile (saying so) on any other. A profile recorded for older source
# still applies to every function whose control flow has not changed; LLVM
# drops it for the others, and `build` says once that the source changed.
# env: CARGO_TARGET_DIR, PGO_EVENTS=200000 (record)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-$HOME/.cache/lakehose-target}
PROFILE=pgo/lakehose.profdata
META=pgo/profile.env

llvm_major() { rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p'; }

# What the profile was recorded from: the Rust sources and the locked
# dependency versions (the compiler is in profile.env on its own).
source_digest() {
  { find src -name '*.rs' -print0 | LC_ALL=C sort -z | xargs -0 cat; cat Cargo.lock; } |
    sha256sum | cut -c1-16
}

build() {
  local flags=${RUSTFLAGS:-}
  if [ ! -s "$PROFILE" ] || [ ! -s "$META" ]; then
    echo "pgo: no $PROFILE; building without a profile (make pgo-profile records one)" >&2
  else
    local LLVM_MAJOR="" SOURCE_DIGEST=""
    # shellcheck source=/dev/null
    . "$META"
    if [ "$LLVM_MAJOR" != "$(llvm_major)" ]; then
      echo "pgo: $PROFILE is for LLVM $LLVM_MAJOR, this rustc has LLVM $(llvm_major);" \
        "building without it (make pgo-profile records one for this toolchain)" >&2
    else
      [ "$SOURCE_DIGEST" = "$(source_digest)" ] ||
        echo "pgo: the source changed since $PROFILE was recorded; code changed since" \
          "is built without it (make pgo-profile records a new one)" >&2
      # Cargo does not watch the profile's content, so its hash goes into the
      # path: a new profile rebuilds, the same one does not.
      local sum
      sum=$(sha256sum "$PROFILE" | cut -c1-16)
      mkdir -p "$T/profile"
      [ -f "$T/profile/$sum.profdata" ] || cp "$PROFILE" "$T/profile/$sum.profdata"
      # LLVM's own warning for each function changed since (one line each)
      # is off: the note above says it once. Always off, not only when the
      # source changed, as a change of flags rebuilds every crate.
      flags="$flags -Cprofile-use=$T/profile/$sum.profdata -Cllvm-args=-no-pgo-warn-mismatch"
    fi
  fi
  RUSTFLAGS=$flags cargo build --release >&2
  echo "$T/release/lakehose"
}

plain() {
  # A target directory of its own: different flags in one directory would
  # rebuild every crate at each switch.
  CARGO_TARGET_DIR="$T/plain" cargo build --release --bin lakehose >&2
  echo "$T/plain/release/lakehose"
}

record() {
  local work=$T/pgo host profdata gen
  # The training events; profile.env repeats them for whoever reads it.
  local train=(--count "${PGO_EVENTS:-200000}" --bad 0.03 --dup 0.01 --seed 11)
  # llvm-profdata must match rustc's LLVM: rustup's llvm-tools has it.
  host=$(rustc -vV | sed -n 's/^host: //p')
  profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
  if [ ! -x "$profdata" ]; then
    echo "pgo: installing rustup's llvm-tools for llvm-profdata ..." >&2
    rustup component add llvm-tools >&2 || {
      echo "pgo: no $profdata and 'rustup component add llvm-tools' failed" >&2
      exit 1
    }
  fi
  # The instrumented build has a target directory of its own (its flags
  # differ from every other build's).
  RUSTFLAGS="-Cprofile-generate=$work/raw" CARGO_TARGET_DIR="$T/pgo-gen" \
    cargo build --release --bin lakehose >&2
  gen=$T/pgo-gen/release/lakehose
  rm -rf "$work/raw" "$work/lake"
  mkdir -p "$work"
  "$gen" gen taxi "${train[@]}" -o "$work/train.ndjson" >&2
  LAKEHOSE_MASK_KEY=pgo-training "$gen" run --input "$work/train.ndjson" --lake "$work/lake" \
    --schemas schemas -q >&2
  # Sparse: only functions that ran. About 1 MB instead of 50 (every
  # function of the AWS clients with its zero counters).
  "$profdata" merge --sparse -o "$PROFILE" "$work/raw"
  rm -rf "$work/raw" "$work/lake" "$work/train.ndjson"
  cat > "$META" <<EOF
# Written by scripts/pgo.sh record ($(date -u +%Y-%m-%d)); read by scripts/pgo.sh build.
# The LLVM major version that wrote pgo/lakehose.profdata (rustc $(rustc -vV | sed -n 's/^release: //p')).
LLVM_MAJOR=$(llvm_major)
# The source it was recorded from (scripts/pgo.sh source_digest).
SOURCE_DIGEST=$(source_digest)
# Training: lakehose gen taxi ${train[*]}
EOF
  echo "pgo: recorded $PROFILE ($(stat -c %s "$PROFILE") bytes) and $META" >&2
}

case "${1:-}" in
  build) build ;;
  plain) plain ;;
  record) record ;;
  *)
    echo "usage: scripts/pgo.sh build|plain|record" >&2
    exit 2
    ;;
esac
