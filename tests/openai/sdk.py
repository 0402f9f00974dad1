"""OpenAI's official Python SDK (pinned in .ci/requirements.txt), unmodified,
against the bridge's OpenAI-compatible API (tests/openai/run.sh).

    python sdk.py <base url> <client token> online|offline

online: a completion, a streamed completion (several chunks, then [DONE]),
a wrong key, an unknown agent, an approval stop (denied by the bridge,
the turn goes on), the Responses API, whole and streamed; offline (no runtime connected): 503 with Retry-After.
The agents are the run script's: AGENT on a runtime that plays the
recorded turn, APPROVALS on one whose turns ask for a tool approval.
"""

import sys

import openai

AGENT = "agent-openai"
APPROVALS = "agent-approvals"
RECORDED = "Hello from the scripted model."


def check(what, ok, detail=""):
    if not ok:
        sys.exit(f"python openai: {what} FAILED {detail}")
    print(f"python openai: {what}: ok")


def online(client, base):
    hi = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "hi"}]
    completion = client.chat.completions.create(model=AGENT, messages=hi)
    message = completion.choices[0].message
    check("a completion", message.content == RECORDED and completion.choices[0].finish_reason == "stop", completion)
    check("its usage", completion.usage is not None and completion.usage.total_tokens > 0, completion.usage)

    stream = client.chat.completions.create(model=AGENT, messages=hi, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)  # the SDK stops at data: [DONE]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.content]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check("a streamed completion", text == RECORDED and len(pieces) >= 2 and finish == ["stop"], chunks)
    check("its usage chunk", chunks[-1].usage is not None and chunks[-1].choices == [], chunks[-1])

    wrong = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-wrong", max_retries=0)
    try:
        wrong.chat.completions.create(model=AGENT, messages=hi)
        check("a wrong key", False, "no error")
    except openai.AuthenticationError as e:
        check("a wrong key is AuthenticationError", e.status_code == 401 and e.code == "invalid_api_key", e.body)

    try:
        client.chat.completions.create(model="agent-nobody-knows", messages=hi)
        check("an unknown agent", False, "no error")
    except openai.NotFoundError as e:
        check("an unknown agent is NotFoundError", e.code == "model_not_found", e.body)

    denied = client.chat.completions.create(model=APPROVALS, messages=[{"role": "user", "content": "make a file"}])
    check("an approval stop is denied and the turn goes on", denied.choices[0].message.content == "Understood, I will not.", denied)

    response = client.responses.create(model=AGENT, input="hi")
    check("the Responses API", response.output_text == RECORDED and response.status == "completed", response)
    events = list(client.responses.create(model=AGENT, input=[{"role": "user", "content": "hi"}], stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    last = events[-1]
    check("a streamed response", "".join(deltas) == RECORDED and len(deltas) >= 2 and last.type == "response.completed"
          and last.response.output_text == RECORDED, [e.type for e in events])

    models = [m.id for m in client.models.list()]
    check("models lists the agents", AGENT in models and APPROVALS in models, models)


def offline(client):
    try:
        client.chat.completions.create(model=AGENT, messages=[{"role": "user", "content": "hi"}])
        check("no runtime online", False, "no error")
    except openai.InternalServerError as e:
        retry = e.response.headers.get("retry-after")
        check("no runtime online is a 503 with Retry-After", e.status_code == 503 and retry is not None, e.body)


def main():
    base, token, phase = sys.argv[1], sys.argv[2], sys.argv[3]
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0, timeout=60)
    online(client, base) if phase == "online" else offline(client)


main()
