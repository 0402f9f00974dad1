"""LangChain's ChatOpenAI (langchain-openai, pinned in .ci/requirements.txt),
pointed at the bridge with `base_url`: one turn, answered and streamed
(tests/openai/run.sh).

    python langchain_turn.py <base url> <client token>
"""

import sys

from langchain_openai import ChatOpenAI

base, token = sys.argv[1], sys.argv[2]
llm = ChatOpenAI(base_url=f"{base}/v1", api_key=token, model="agent-openai", max_retries=0, timeout=60)
answer = llm.invoke([("system", "ignored: the agent has its own"), ("human", "hi")])
if answer.content != "Hello from the scripted model.":
    sys.exit(f"langchain: invoke FAILED: {answer!r}")
print("langchain ChatOpenAI: invoke: ok")
pieces = [chunk.content for chunk in llm.stream("hi") if chunk.content]
if "".join(pieces) != "Hello from the scripted model." or len(pieces) < 2:
    sys.exit(f"langchain: stream FAILED: {pieces!r}")
print("langchain ChatOpenAI: stream: ok")
