"""A whole turn through the Python client that openapi-python-client generates
from the served document (tests/contract/run.sh generates it into a temporary
folder on PYTHONPATH): a message with wait=completion that stops at a tool
approval, the approval with wait=completion to the turn's end, and the turn's
events read back from GET /events. Uses only the generated client's typed
calls and models. Usage: turn.py BASE_URL CLIENT_TOKEN RUNTIME_ID."""

import sys

from letta_bridge_client import AuthenticatedClient
from letta_bridge_client.api.commands import post_runtime_approval, post_runtime_input
from letta_bridge_client.api.events import get_events
from letta_bridge_client.models import (
    AllowDecision,
    AllowDecisionBehavior,
    ApprovalCommand,
    ApprovalResponse,
    CreateMessagePayload,
    CreateMessagePayloadKind,
    InputCommand,
    InputMessage,
    MessageRole,
    PostRuntimeApprovalWait,
    PostRuntimeInputWait,
    RuntimeScope,
    TurnResult,
)


def check(ok, what):
    if not ok:
        raise SystemExit(f"python client: {what}")


def main(base, token, runtime):
    client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True, timeout=30.0)
    scope = RuntimeScope(agent_id="agent-contract", conversation_id="conv-contract")

    message = InputMessage(role=MessageRole.USER, content="please create the file")
    body = InputCommand(
        runtime=scope,
        payload=CreateMessagePayload(kind=CreateMessagePayloadKind.CREATE_MESSAGE, messages=[message]),
    )
    paused = post_runtime_input.sync(
        id=runtime, client=client, body=body, wait=PostRuntimeInputWait.COMPLETION, timeout_ms=5000
    )
    check(isinstance(paused, TurnResult), f"POST /runtimes/{{id}}/input?wait=completion answers a TurnResult: {paused!r}")
    check(paused.stop_reason == "requires_approval", f"the turn stops at the approval: {paused.stop_reason}")
    approval = paused.approval
    check(approval.tool_name == "Bash" and approval.request_id.startswith("perm-"), f"the pending approval: {approval!r}")

    answer = ApprovalCommand(
        runtime=scope,
        payload=ApprovalResponse(request_id=approval.request_id, decision=AllowDecision(behavior=AllowDecisionBehavior.ALLOW)),
    )
    finished = post_runtime_approval.sync(
        id=runtime, client=client, body=answer, wait=PostRuntimeApprovalWait.COMPLETION, timeout_ms=5000
    )
    check(isinstance(finished, TurnResult), f"POST /runtimes/{{id}}/approval?wait=completion answers a TurnResult: {finished!r}")
    check(finished.stop_reason not in ("requires_approval", "error"), f"the turn goes to its end: {finished.stop_reason}")
    check(finished.turn_finished is not None, "the finished turn carries its turn_finished event")

    # The stream ends by itself (LETTA_BRIDGE_MAX_STREAM_DURATION in run.sh).
    # The generated call builds the request; the SSE text is parsed here
    # (the document describes each event, which a generator cannot parse).
    request = get_events._get_kwargs(runtime=runtime, last_event_id=paused.cursor)
    stream = client.get_httpx_client().request(**request)
    check(stream.status_code == 200, f"GET /events answers 200: {stream.status_code}")
    ids, types = [], []
    for line in stream.content.decode().splitlines():
        if line.startswith("id: "):
            ids.append(line[4:])
        elif line.startswith("event: "):
            types.append(line[7:])
    for event_id in paused.event_ids + finished.event_ids:
        check(event_id in ids, f"event {event_id} of the turn is in the stream: {ids}")
    check("control_request" in types and "turn_finished" in types, f"the approval request and the end are streamed: {types}")
    print(f"python client: a whole turn ({len(ids)} events, stop_reason {finished.stop_reason}, text {finished.text!r})")


if __name__ == "__main__":
    main(*sys.argv[1:4])
