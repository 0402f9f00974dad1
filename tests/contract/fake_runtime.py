"""A stand-in Letta Code runtime for the contract tests: connects straight to
the bridge's WebSocket with the runtime token and answers commands with the
reply frames the real runtime sends (PROTOCOL.md §3), so awaited commands
(`?wait=true`) complete while schemathesis explores the API."""

import asyncio
import json
import sys

from websockets.asyncio.client import connect


def replies(frame):
    kind = frame.get("type")
    request_id = frame.get("request_id")
    runtime = frame.get("runtime") or {"agent_id": "agent-1", "conversation_id": "conv-1"}
    if kind == "sync":
        return [
            {"type": "update_loop_status", "runtime": runtime, "loop_status": {"status": "WAITING_ON_INPUT"}},
            {"type": "sync_response", "request_id": request_id, "runtime": runtime, "success": True},
        ]
    if kind == "input":
        # Accepted, then a one-piece turn, so that `?wait=completion` finishes.
        return [{"type": "input_accepted", "request_id": request_id, "runtime": runtime,
                 "accepted": True, "disposition": "started"},
                {"type": "stream_delta", "runtime": runtime,
                 "delta": {"id": "msg-1", "message_type": "assistant_message",
                           "content": [{"type": "text", "text": "ok"}]}},
                {"type": "turn_finished", "runtime": runtime, "turn_id": "turn-1", "stop_reason": "end_turn"}]
    if kind == "abort_message":
        return [{"type": "abort_message_response", "request_id": request_id, "runtime": runtime,
                 "aborted": False, "success": True}]
    if isinstance(request_id, str) and kind not in ("ping", "pong"):
        return [{"type": f"{kind}_response", "request_id": request_id, "success": True}]
    return []


async def main(url, token):
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        print("fake runtime connected", flush=True)
        async for message in ws:
            frame = json.loads(message)
            for reply in replies(frame):
                await ws.send(json.dumps(reply))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
