#!/usr/bin/env bash
# Contract tests against a running bridge with the test kit's fake runtime
# connected (the `fake-runtime` binary of testkit/, answering with the
# recorded frames, whole turns included):
#  1. schemathesis explores every documented operation: no server errors, no
#     response that disagrees with openapi/openapi.json;
#  2. a TypeScript client generated from the document type-checks.
# Usage: tests/contract/run.sh [path/to/letta-bridge]; needs the venv and npm
# packages that .ci/test installs. The fake runtime: $FAKE_RUNTIME, else built
# with cargo (a no-op after `cargo test --workspace`).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/letta-bridge}
if [[ -z "${FAKE_RUNTIME:-}" ]]; then
    cargo build --quiet -p letta-bridge-testkit --bin fake-runtime
    FAKE_RUNTIME=${CARGO_TARGET_DIR:-target}/debug/fake-runtime
fi
VENV=${VENV:-.ci/cache/venv}
WORK=$(mktemp -d)
cleanup() { kill "${FAKE_PID:-}" "${BRIDGE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
export LETTA_BRIDGE_LISTEN="127.0.0.1:$PORT"
export LETTA_BRIDGE_RUNTIME_TOKEN=contract-runtime-token-0001
export LETTA_BRIDGE_CLIENT_TOKEN=contract-client-token-00001
export LETTA_BRIDGE_ADMIN_TOKEN=contract-admin-token-000001
# Streams end after 1 s so that a contract tester can read /events whole.
export LETTA_BRIDGE_MAX_STREAM_DURATION=1s
export LETTA_BRIDGE_MAX_WAIT_TIMEOUT=5s
export LETTA_BRIDGE_WAIT_TIMEOUT=5s
export RUST_LOG=warn

"$BIN" > "$WORK/bridge.log" 2>&1 &
BRIDGE_PID=$!
for _ in $(seq 100); do curl -fs "$BASE/healthz" > /dev/null && break; sleep 0.1; done
curl -fs "$BASE/healthz" > /dev/null || { echo "the bridge did not start"; cat "$WORK/bridge.log"; exit 1; }

# Its stdout (every frame it gets) and stderr go to the log; stdin is unused.
"$FAKE_RUNTIME" --play-turns --url "ws://127.0.0.1:$PORT/ws?deviceId=contract-runtime" \
    --token "$LETTA_BRIDGE_RUNTIME_TOKEN" < /dev/null > "$WORK/fake.log" 2>&1 &
FAKE_PID=$!
for _ in $(seq 100); do curl -fs "$BASE/readyz?runtimes=1" > /dev/null && break; sleep 0.1; done
curl -fs "$BASE/readyz?runtimes=1" > /dev/null || { echo "the fake runtime did not connect"; tail -20 "$WORK/fake.log"; exit 1; }

echo "--- schemathesis"
# The WebSocket paths (the runtime's, and Letta clients' relay and
# App-Server sockets) are left out: an HTTP fuzzer cannot speak WebSocket
# (the integration and live tests cover them).
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=tests/contract \
    "$VENV/bin/schemathesis" --config-file tests/contract/schemathesis.toml run "$BASE/openapi.json" \
    --exclude-path-regex '^/ws|/status/ws$|^/app-server/ws$' \
    --checks all \
    --max-examples "${MAX_EXAMPLES:-25}" \
    --request-timeout 15 \
    --seed 1 \
    --no-color

kill -0 "$BRIDGE_PID" || { echo "the bridge died"; cat "$WORK/bridge.log"; exit 1; }
kill -0 "$FAKE_PID" || { echo "the fake runtime died"; tail -20 "$WORK/fake.log"; exit 1; }

echo "--- TypeScript client from the OpenAPI document"
npm run --prefix tests/contract -s generate
npm run --prefix tests/contract -s typecheck
echo "contract tests passed"
