"""A stand-in Letta Code runtime for the contract tests: connects straight to
the bridge's WebSocket with the runtime token and answers commands with the
frames the real runtime sent in the recording (tests/fixtures/letta-code-*/,
written by tests/record), as the Rust FakeRuntime does (tests/api/helpers.rs,
tests/api/fixtures.rs):

- `sync`, `input`, `abort_message`, `change_device_state` without a valid
  runtime scope are dropped unanswered, as the runtime drops them;
- `sync` -> the state events, then `sync_response`;
- `input` create_message -> the whole recorded turn (`input_accepted`, loop
  status, assistant deltas, `turn_finished`), so `?wait=completion` finishes;
  approval_response -> `input_accepted` with `accepted: false` (recorded for
  an approval request that is not pending);
- `abort_message` -> `abort_message_response` (nothing running);
- `runtime_start`, `change_device_state`, `list_in_directory` -> as recorded;
- anything else gets no answer (an awaited one ends in 504, as with the real
  runtime)."""

import asyncio
import itertools
import json
import pathlib
import re
import sys

from websockets.asyncio.client import connect

RUNTIME_VERSION = "0.32.18"
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / f"letta-code-{RUNTIME_VERSION}"

TIMESTAMP = "2026-11-25T12:34:56.789Z"
AGENT = "agent-local-00000000-0000-4000-8000-000000000001"
CONVERSATION = "local-conv-1"
STAND_INS = {
    "<home>": "/home/runtime",
    "<tmp>": "/tmp/runtime",
    "<runtime-package>": "/opt/letta-code/package",
    "<device-id>": "00000000-0000-4000-a000-000000000001",
    "<listener-instance-id>": "00000000-0000-4000-a000-000000000002",
    "<os>": "linux",
    "<nodeVersion>": "v22.23.3",
}
UUID_PLACEHOLDER = re.compile(r"<uuid-(\d+)>")
TIMESTAMP_MASK = re.compile(r"^0000-00-00T[0:.]*[^0-9]*$")

_seq = itertools.count(1)
_fixtures = {}


def step(name, i=0):
    if name not in _fixtures:
        _fixtures[name] = json.loads((FIXTURES / f"{name}.json").read_text())
    return _fixtures[name]["steps"][i]


def is_runtime_scope(v):
    """The runtime's own test (isRuntimeScope in letta-code)."""
    if not isinstance(v, dict):
        return False
    conversation, agent = v.get("conversation_id"), v.get("agent_id", ...)
    return isinstance(conversation, str) and conversation != "" and (
        agent is None or (isinstance(agent, str) and agent != ""))


def replay(name, command, keep=lambda f: True):
    """The recorded frames of `name`, answering `command`: its values in
    place of the recorded command's, fresh event envelopes."""
    recorded = step(name)["send"]
    whole = {v: command.get(k) for k, v in recorded.items() if k != "type" and isinstance(v, str)}
    live_scope = command.get("runtime") if isinstance(command.get("runtime"), dict) else {}
    parts = []
    for key, placeholder, default in (("agent_id", "<agent-id>", AGENT),
                                      ("conversation_id", "<conversation-id>", CONVERSATION)):
        value = live_scope.get(key) or command.get(key) or default
        rec = (recorded.get("runtime") or {}).get(key)
        if isinstance(rec, str) and rec != placeholder:
            parts.append((rec, value))
        parts.append((placeholder, value))
    parts.extend(STAND_INS.items())

    def string(s):
        if s in whole and isinstance(whole[s], str):
            return whole[s]
        if TIMESTAMP_MASK.match(s):
            return "".join(t if m == "0" else m for m, t in zip(s, TIMESTAMP + "0" * len(s)))
        for rec, live in parts:
            s = s.replace(rec, live)
        return UUID_PLACEHOLDER.sub(lambda m: f"00000000-0000-4000-8000-{int(m.group(1)):012d}", s)

    def value(v):
        if isinstance(v, str):
            return string(v)
        if isinstance(v, list):
            return [value(i) for i in v]
        if isinstance(v, dict):
            # A field the live command lacks (request_id) disappears.
            return {k: value(x) for k, x in v.items()
                    if not (isinstance(x, str) and x in whole and whole[x] is None)}
        return v

    out = []
    for frame in step(name)["frames"]:
        if not keep(frame):
            continue
        frame = value(frame)
        if frame.get("event_seq") == "<event-seq>":
            seq = next(_seq)
            frame["event_seq"] = seq
            if isinstance(frame.get("idempotency_key"), str):
                frame["idempotency_key"] = frame["idempotency_key"].replace("<event-seq>", str(seq))
        out.append(frame)
    return out


def replies(frame):
    kind = frame.get("type")
    scoped = is_runtime_scope(frame.get("runtime"))
    if kind in ("sync", "input", "abort_message", "change_device_state") and not scoped:
        return []
    if kind == "input":
        if (frame.get("payload") or {}).get("kind") == "create_message":
            return replay("turn", frame)
        # An approval for a request that is not pending, as recorded.
        return replay("approval_unknown", frame)
    exchange = {
        "sync": "sync",
        "abort_message": "abort_idle",
        "runtime_start": "runtime_start",
        "change_device_state": "change_device_state",
        "list_in_directory": "list_in_directory",
    }.get(kind)
    return replay(exchange, frame) if exchange else []


async def main(url, token):
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        print("fake runtime connected", flush=True)
        async for message in ws:
            frame = json.loads(message)
            for reply in replies(frame):
                await ws.send(json.dumps(reply))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
