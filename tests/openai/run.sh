#!/usr/bin/env bash
# OpenAI's official SDKs, pinned and unmodified (Python: .ci/requirements.txt;
# Node: tests/openai/package.json), against a running bridge's
# OpenAI-compatible API, with the test kit's fake-runtime program connected
# twice: one runtime plays the recorded turn, the other's turns ask for a
# tool approval (which the bridge denies: LETTA_BRIDGE_OPENAI_APPROVALS'
# default). Each SDK: a completion, a streamed completion, a wrong key, an
# unknown agent, the approval stop, the models; then, with no runtime
# online, a 503 with Retry-After. Then one tool of the ecosystem that takes
# a custom OpenAI base URL (LangChain's ChatOpenAI) runs a turn.
source "$(dirname "$0")/../bridge.sh"
export LETTA_BRIDGE_RUNTIME_TOKEN=openai-runtime-token-000001
export LETTA_BRIDGE_CLIENT_TOKEN=openai-client-token-0000001
export LETTA_BRIDGE_ADMIN_TOKEN=openai-admin-token-00000001
TOKEN=$LETTA_BRIDGE_CLIENT_TOKEN
start_bridge
runtime openai-runtime --play-turns
FAKE_PID=$!
runtime approvals-runtime --play-turns --ask-approval
APPROVALS_PID=$!
ready 2

# Each runtime shows the bridge its agent (a sync of the agent's default
# conversation: its state events name the scope), as a real runtime does
# when the agent is created or resumed.
show() { # <device> <agent>
    curl -fs -X POST "$BASE/sync?runtime=$1&wait=true" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d "{\"runtime\":{\"agent_id\":\"$2\",\"conversation_id\":\"default\"}}" > /dev/null
}
show openai-runtime agent-openai
show approvals-runtime agent-approvals

echo "--- the openai SDKs: Python, then Node"
"$VENV/bin/python" tests/openai/sdk.py "$BASE" "$TOKEN" online
node tests/openai/sdk.mjs "$BASE" "$TOKEN" online

echo "--- LangChain's ChatOpenAI with the bridge as its base URL"
"$VENV/bin/python" tests/openai/langchain_turn.py "$BASE" "$TOKEN"

echo "--- no runtime online"
kill "$FAKE_PID" "$APPROVALS_PID"
wait "$FAKE_PID" "$APPROVALS_PID" 2>/dev/null || true
for _ in $(seq 100); do curl -fs "$BASE/readyz?runtimes=1" > /dev/null || break; sleep 0.1; done
"$VENV/bin/python" tests/openai/sdk.py "$BASE" "$TOKEN" offline
node tests/openai/sdk.mjs "$BASE" "$TOKEN" offline
alive
echo "openai SDK tests passed"
