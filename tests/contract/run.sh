#!/usr/bin/env bash
# Contract tests against a running bridge with the test kit's fake runtime
# connected (the `fake-runtime` binary of testkit/, answering with the
# recorded frames, whole turns included):
#  1. the served document is valid OpenAPI 3.1 and its `?version=2.0`
#     rendering valid Swagger 2.0 (openapi-spec-validator), and both lint
#     with zero errors (Redocly CLI, tests/contract/redocly.yaml);
#  2. schemathesis explores every documented operation: no server errors, no
#     response that disagrees with openapi/openapi.json;
#  3. clients generated from the served document run a whole turn (a message
#     with wait=completion, its tool approval, the events) against a second
#     fake runtime that asks for approvals: Python (openapi-python-client)
#     and Go (openapi-generator's Go client, built with Debian's Go and
#     Debian's packaged Go libraries: the Go module proxy is out of reach);
#  4. a TypeScript client generated from the document type-checks.
source "$(dirname "$0")/../bridge.sh"
export LETTA_BRIDGE_RUNTIME_TOKEN=contract-runtime-token-0001
export LETTA_BRIDGE_CLIENT_TOKEN=contract-client-token-00001
export LETTA_BRIDGE_ADMIN_TOKEN=contract-admin-token-000001
# Streams end after 1 s so that a contract tester can read /events whole.
export LETTA_BRIDGE_MAX_STREAM_DURATION=1s
export LETTA_BRIDGE_MAX_WAIT_TIMEOUT=5s
export LETTA_BRIDGE_WAIT_TIMEOUT=5s
start_bridge
runtime contract-runtime --play-turns
FAKE_PID=$!
ready 1

echo "--- the served document: OpenAPI 3.1, and Swagger 2.0 with ?version=2.0"
curl -fs "$BASE/openapi.json" > "$WORK/openapi.json"
curl -fs "$BASE/openapi.json?version=2.0" > "$WORK/swagger2.json"
"$VENV/bin/openapi-spec-validator" --validation-errors all --schema 3.1 "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" --validation-errors all --schema 2.0 "$WORK/swagger2.json"
tests/contract/node_modules/.bin/redocly lint --config tests/contract/redocly.yaml --format=stylish \
    "$WORK/openapi.json" "$WORK/swagger2.json" 2>&1 | grep -v -e '^ *║' -e '^ *╔' -e '^ *╚' -e 'Node.js'

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

alive
kill -0 "$FAKE_PID" || { echo "the fake runtime died"; tail -20 "$WORK/contract-runtime.log"; exit 1; }

echo "--- generated clients run a whole turn"
# A second runtime that asks for a tool approval in every turn; the clients
# name it in the path (/runtimes/{id}/...).
runtime clients-runtime --play-turns --ask-approval
ready 2

# Python: every operation generated (a dropped one is a warning, and fails).
"$VENV/bin/openapi-python-client" generate --path "$WORK/openapi.json" --output-path "$WORK/python" \
    --config tests/contract/clients/python-client.yaml --fail-on-warning > "$WORK/python-gen.log" 2>&1 \
    || { cat "$WORK/python-gen.log"; exit 1; }
PYTHONPATH="$WORK/python" "$VENV/bin/python" tests/contract/clients/turn.py "$BASE" "$LETTA_BRIDGE_CLIENT_TOKEN" clients-runtime

# Go: the generated package in a GOPATH beside Debian's Go libraries
# (/usr/share/gocode: gopkg.in/validator.v2), so nothing is downloaded.
GO_SRC="$WORK/go/src/lettabridge"
"$VENV/bin/openapi-generator-cli" generate -i "$WORK/openapi.json" -g go -o "$GO_SRC/letta" --package-name letta \
    --global-property apiTests=false,modelTests=false,apiDocs=false,modelDocs=false > "$WORK/go-gen.log" 2>&1 \
    || { cat "$WORK/go-gen.log"; exit 1; }
mkdir -p "$GO_SRC/turn" && cp tests/contract/clients/go/main.go "$GO_SRC/turn/"
(cd "$WORK" && GO111MODULE=off GOPATH="$WORK/go:/usr/share/gocode" GOFLAGS= \
    go run lettabridge/turn "$BASE" "$LETTA_BRIDGE_CLIENT_TOKEN" clients-runtime)

echo "--- TypeScript client from the OpenAPI document"
npm run --prefix tests/contract -s generate
npm run --prefix tests/contract -s typecheck
echo "contract tests passed"
