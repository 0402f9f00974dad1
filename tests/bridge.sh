# The set-up shared by the scripts that drive a bridge process with the test
# kit's fake runtimes (tests/contract/run.sh, tests/openai/run.sh). Source it
# with the script's own arguments (`$1`: the bridge binary, target/debug by
# default) after exporting the LETTA_BRIDGE_* settings the script wants. It
# gives: BIN, FAKE_RUNTIME (built when not given), VENV, WORK (removed on
# exit), BASE (the bridge's address on a free loopback port), and
#   start_bridge              the bridge, its log in $WORK/bridge.log, once /healthz answers;
#   runtime <device> <flags…> a fake runtime (pid in $!), its frames in $WORK/<device>.log;
#   ready <n>                 waits until n runtimes are online (/readyz?runtimes=n);
#   alive                     fails, with the log, when the bridge died.
# Every process started here is stopped on exit.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:-target/debug/letta-bridge}
if [[ -z "${FAKE_RUNTIME:-}" ]]; then
    cargo build --quiet -p letta-bridge-testkit --bin fake-runtime
    FAKE_RUNTIME=${CARGO_TARGET_DIR:-target}/debug/fake-runtime
fi
VENV=${VENV:-.ci/cache/venv}
WORK=$(mktemp -d)
STARTED=()
cleanup() { kill "${STARTED[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export LETTA_BRIDGE_LISTEN="127.0.0.1:$PORT"
export RUST_LOG=${RUST_LOG:-warn}

start_bridge() {
    "$BIN" > "$WORK/bridge.log" 2>&1 &
    BRIDGE_PID=$!
    STARTED+=("$BRIDGE_PID")
    for _ in $(seq 100); do curl -fs "$BASE/healthz" > /dev/null && return; sleep 0.1; done
    echo "the bridge did not start"; cat "$WORK/bridge.log"; exit 1
}

runtime() { # <device> <flags…>
    local device=$1; shift
    "$FAKE_RUNTIME" "$@" --url "ws://127.0.0.1:$PORT/ws?deviceId=$device" --token "$LETTA_BRIDGE_RUNTIME_TOKEN" \
        < /dev/null > "$WORK/$device.log" 2>&1 &
    STARTED+=("$!")
}

ready() { # <n>
    for _ in $(seq 100); do curl -fs "$BASE/readyz?runtimes=$1" > /dev/null && return; sleep 0.1; done
    echo "$1 runtime(s) did not come online"; tail -n 20 "$WORK"/*.log; exit 1
}

alive() {
    kill -0 "$BRIDGE_PID" || { echo "the bridge died"; cat "$WORK/bridge.log"; exit 1; }
}
