#!/usr/bin/env bash
# Create a Python virtual environment and install a pinned requirements file
# into it. Used for the emulators (moto) and the benchmark (DuckDB).
# usage: scripts/pyvenv.sh VENV_DIR REQUIREMENTS_FILE
#
# `python3 -m venv` bootstraps pip with ensurepip, which some Pythons lack or
# break (Debian without python3-venv; seen failing on a CI machine). Then the
# venv is made without pip and the interpreter's own pip installs into it
# (`pip --python`, pip >= 22.3). Either failure is printed in full.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 VENV_DIR REQUIREMENTS_FILE" >&2; exit 2; }
venv=$1 req=$2
log=$(mktemp "${TMPDIR:-/tmp}/pyvenv.XXXXXX")
trap 'rm -f "$log"' EXIT

fail() {
  echo "pyvenv.sh: $*" >&2
  sed 's/^/  | /' "$log" >&2
  df -h "$(dirname "$venv")" >&2 || true
  exit 1
}

rm -rf "$venv"
if python3 -m venv "$venv" >"$log" 2>&1; then
  pip=("$venv/bin/python" -m pip)
else
  echo "pyvenv.sh: 'python3 -m venv $venv' failed; retrying without ensurepip:" >&2
  sed 's/^/  | /' "$log" >&2
  rm -rf "$venv"
  python3 -m venv --without-pip "$venv" >"$log" 2>&1 \
    || fail "'python3 -m venv --without-pip $venv' failed (on Debian: apt-get install python3-venv)"
  python3 -m pip --version >"$log" 2>&1 \
    || fail "python3 has no pip to install into $venv without ensurepip"
  pip=(python3 -m pip --python "$venv/bin/python")
fi
"${pip[@]}" install -q --disable-pip-version-check -r "$req" >"$log" 2>&1 \
  || fail "pip install -r $req into $venv failed"
