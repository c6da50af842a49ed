#!/usr/bin/env bash
# Local AWS emulators for lakehose's integration tests, all on 127.0.0.1:
#   S3 + Glue: moto's standalone server (emulators/requirements.txt -> emulators/.venv)
#   Kinesis:   kinesis-mock, npm package kinesis-local (emulators/package-lock.json)
#
# usage:
#   scripts/emulators.sh install            venv + npm ci, only when missing or a pin changed
#   scripts/emulators.sh start STATE_DIR    start both on free ports, wait until they answer,
#                                           write STATE_DIR/env (export lines), pids, logs
#   scripts/emulators.sh stop STATE_DIR     stop both (and their children); safe to repeat
#   scripts/emulators.sh run -- CMD...      install, start in a temp dir, run CMD with the env,
#                                           always stop; exits with CMD's status
#
# Any failure to install or start is fatal and says what failed: tests that need the
# emulators must never be skipped silently because the emulators are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EMU=$ROOT/emulators
VENV=$EMU/.venv
KINESIS_DIR=$EMU/node_modules/kinesis-local
READY_TIMEOUT=${EMULATORS_READY_TIMEOUT:-60}

die() { echo "emulators.sh: $*" >&2; exit 1; }
say() { echo "emulators.sh: $*" >&2; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH (needed: $2)"; }

sha() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

cmd_install() {
  need python3 "python3 >= 3.9 with venv and pip, for moto"
  need node "node >= 18, for kinesis-mock"
  need npm "npm, to install kinesis-mock"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || die "python3 is $(python3 -V 2>&1); moto needs >= 3.9"

  local want have
  want=$(sha "$EMU/requirements.txt")
  have=$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ] || [ ! -x "$VENV/bin/moto_server" ]; then
    say "installing moto into emulators/.venv (takes about a minute) ..."
    "$ROOT/scripts/pyvenv.sh" "$VENV" "$EMU/requirements.txt" || die "installing moto failed"
    [ -x "$VENV/bin/moto_server" ] || die "moto_server missing from $VENV/bin after pip install"
    echo "$want" > "$VENV/.requirements.sha256"
  fi

  want=$(sha "$EMU/package-lock.json")
  have=$(cat "$EMU/node_modules/.lakehose-lock.sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ] || [ ! -f "$KINESIS_DIR/main.js" ]; then
    say "installing kinesis-mock into emulators/node_modules ..."
    (cd "$EMU" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
      || die "npm ci in emulators/ failed"
    [ -f "$KINESIS_DIR/main.js" ] || die "$KINESIS_DIR/main.js missing after npm ci"
    echo "$want" > "$EMU/node_modules/.lakehose-lock.sha256"
  fi
}

# Three distinct free loopback ports: moto, kinesis plain HTTP, kinesis TLS (unused, but
# it always listens, so it must not collide with anything either).
free_ports() {
  python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()'
}

# Start "$@" in its own session (pid == process group id) so stop can end it and
# whatever it spawned; stdout+stderr to $log, pid to $pidfile.
spawn() {
  local pidfile=$1 log=$2; shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

cmd_start() {
  local state=${1:-}
  [ -n "$state" ] || die "usage: $0 start STATE_DIR"
  [ -x "$VENV/bin/moto_server" ] || die "moto not installed: run '$0 install' first"
  [ -f "$KINESIS_DIR/main.js" ] || die "kinesis-mock not installed: run '$0 install' first"
  need node "node, for kinesis-mock"
  need setsid "setsid (util-linux), to stop the emulators with their children"
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  for f in moto.pid kinesis.pid; do
    if [ -f "$state/$f" ] && kill -0 "$(cat "$state/$f")" 2>/dev/null; then
      die "$state/$f: already running (pid $(cat "$state/$f")); '$0 stop $state' first"
    fi
  done
  rm -f "$state/env"

  local t0 ports moto_port kin_port kin_tls_port
  t0=$(date +%s.%N)
  ports=$(free_ports)
  read -r moto_port kin_port kin_tls_port <<<"$ports"

  spawn "$state/moto.pid" "$state/moto.log" \
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port"

  # kinesis-mock: plain HTTP for the SDKs, stream state transitions fast, nothing persisted.
  # It hard-codes 0.0.0.0 as its listen host; loopback-only.cjs pins it to 127.0.0.1.
  # Run from STATE_DIR so nothing it might write lands in the repo; its TLS certificate
  # (served on the TLS port, which it always opens) is named by path.
  (
    cd "$state"
    export KINESIS_MOCK_PLAIN_PORT=$kin_port
    export KINESIS_MOCK_TLS_PORT=$kin_tls_port
    export KINESIS_MOCK_CERT_PATH=$KINESIS_DIR/server.json
    export AWS_ACCOUNT_ID=000000000000 AWS_REGION=us-east-1
    export SHOULD_PERSIST_DATA=false LOAD_DATA_IF_EXISTS=false
    export CREATE_STREAM_DURATION=100ms DELETE_STREAM_DURATION=100ms
    export MERGE_SHARDS_DURATION=100ms SPLIT_SHARD_DURATION=100ms
    export UPDATE_SHARD_COUNT_DURATION=100ms UPDATE_STREAM_MODE_DURATION=100ms
    export REGISTER_STREAM_CONSUMER_DURATION=100ms DEREGISTER_STREAM_CONSUMER_DURATION=100ms
    export START_STREAM_ENCRYPTION_DURATION=100ms STOP_STREAM_ENCRYPTION_DURATION=100ms
    # one emulator serves a whole test run: room for many streams
    export SHARD_LIMIT=1000 ON_DEMAND_STREAM_COUNT_LIMIT=100
    export LOG_LEVEL=${KINESIS_MOCK_LOG_LEVEL:-INFO}
    spawn "$state/kinesis.pid" "$state/kinesis.log" \
      node --require "$EMU/loopback-only.cjs" "$KINESIS_DIR/main.js"
  )

  # Wait until both answer over HTTP; fail at once if one of them exits.
  if ! python3 - "$READY_TIMEOUT" \
      "moto" "http://127.0.0.1:$moto_port/moto-api/" "$(cat "$state/moto.pid")" "$state/moto.log" \
      "kinesis-mock" "http://127.0.0.1:$kin_port/healthcheck" "$(cat "$state/kinesis.pid")" "$state/kinesis.log" <<'PY'
import os, sys, time, urllib.request, urllib.error
timeout = float(sys.argv[1])
args = sys.argv[2:]
pending = [args[i:i + 4] for i in range(0, len(args), 4)]
deadline = time.monotonic() + timeout
while pending:
    for item in list(pending):
        name, url, pid, log = item
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"emulators.sh: {name} exited during start-up; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                ok = r.status == 200
        except (urllib.error.URLError, OSError):
            ok = False
        if ok:
            pending.remove(item)
    if not pending:
        break
    if time.monotonic() > deadline:
        sys.exit("emulators.sh: not ready after %gs: %s" % (
            timeout, ", ".join(f"{n} ({u}; log {l})" for n, u, _, l in pending)))
    time.sleep(0.1)
PY
  then
    for f in moto kinesis; do
      echo "--- last lines of $state/$f.log:" >&2
      tail -n 20 "$state/$f.log" >&2 || true
    done
    cmd_stop "$state"
    die "start failed (logs in $state)"
  fi

  cat >"$state/env.tmp" <<EOF
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_GLUE=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$kin_port
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export LAKEHOSE_TEST_EMULATORS=1
export LAKEHOSE_EMULATORS_STATE=$state
EOF
  mv "$state/env.tmp" "$state/env"
  say "ready in $(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)")s:" \
    "moto (S3, Glue) 127.0.0.1:$moto_port, kinesis-mock 127.0.0.1:$kin_port; env in $state/env"
}

# Stop both: TERM to each process group (kills children too), KILL what is left after 5 s.
cmd_stop() {
  local state=${1:-} f pid pids=() i
  [ -n "$state" ] || die "usage: $0 stop STATE_DIR"
  [ -d "$state" ] || return 0
  for f in "$state/moto.pid" "$state/kinesis.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for i in $(seq 50); do
    [ ${#pids[@]} -gt 0 ] || break
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$state/moto.pid" "$state/kinesis.pid" "$state/env"
}

cmd_run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "usage: $0 run -- CMD..."
  cmd_install
  local state status
  state=$(mktemp -d "${TMPDIR:-/tmp}/lakehose-emulators.XXXXXX")
  # shellcheck disable=SC2064
  trap "cmd_stop '$state'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cmd_start "$state"
  # shellcheck disable=SC1091
  source "$state/env"
  set +e
  "$@"
  status=$?
  set -e
  if [ "$status" -eq 0 ]; then
    cmd_stop "$state"
    rm -rf "$state"
  else
    say "command exited $status; emulator logs kept in $state"
  fi
  exit "$status"
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  run) shift; cmd_run "$@" ;;
  *) die "usage: $0 install | start STATE_DIR | stop STATE_DIR | run -- CMD..." ;;
esac
