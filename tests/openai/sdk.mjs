// OpenAI's official Node SDK (pinned in tests/openai/package.json),
// unmodified, against the bridge's OpenAI-compatible API
// (tests/openai/run.sh); the same checks as sdk.py.
//
//   node sdk.mjs <base url> <client token> online|offline
import OpenAI from "openai";

const [base, token, phase] = process.argv.slice(2);
const AGENT = "agent-openai";
const APPROVALS = "agent-approvals";
const RECORDED = "Hello from the scripted model.";
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: token, maxRetries: 0, timeout: 60_000 });

function check(what, ok, detail = "") {
  if (!ok) {
    console.error(`node openai: ${what} FAILED`, detail);
    process.exit(1);
  }
  console.log(`node openai: ${what}: ok`);
}

async function expectError(what, call, Kind, test) {
  try {
    await call();
    check(what, false, "no error");
  } catch (e) {
    check(what, e instanceof Kind && test(e), e);
  }
}

const hi = [{ role: "system", content: "ignored" }, { role: "user", content: "hi" }];

if (phase === "online") {
  const completion = await client.chat.completions.create({ model: AGENT, messages: hi });
  check("a completion", completion.choices[0].message.content === RECORDED && completion.choices[0].finish_reason === "stop", completion);

  const stream = await client.chat.completions.create({ model: AGENT, messages: hi, stream: true });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk); // ends at data: [DONE]
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  const pieces = chunks.filter((c) => c.choices[0]?.delta?.content);
  const finish = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
  check("a streamed completion", text === RECORDED && pieces.length >= 2 && finish.join() === "stop", chunks);

  const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
  await expectError("a wrong key is AuthenticationError", () => wrong.chat.completions.create({ model: AGENT, messages: hi }),
    OpenAI.AuthenticationError, (e) => e.status === 401 && e.code === "invalid_api_key");
  await expectError("an unknown agent is NotFoundError",
    () => client.chat.completions.create({ model: "agent-nobody-knows", messages: hi }),
    OpenAI.NotFoundError, (e) => e.code === "model_not_found");

  const denied = await client.chat.completions.create({ model: APPROVALS, messages: [{ role: "user", content: "make a file" }] });
  check("an approval stop is denied and the turn goes on", denied.choices[0].message.content === "Understood, I will not.", denied);

  const response = await client.responses.create({ model: AGENT, input: "hi" });
  check("the Responses API", response.output_text === RECORDED && response.status === "completed", response);
  const events = [];
  for await (const event of await client.responses.create({ model: AGENT, input: "hi", stream: true })) events.push(event);
  const deltas = events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta);
  check("a streamed response", deltas.join("") === RECORDED && deltas.length >= 2 && events.at(-1).type === "response.completed",
    events.map((e) => e.type));

  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  check("models lists the agents", models.includes(AGENT) && models.includes(APPROVALS), models);
} else {
  await expectError("no runtime online is a 503 with Retry-After",
    () => client.chat.completions.create({ model: AGENT, messages: hi }),
    OpenAI.InternalServerError, (e) => e.status === 503 && e.headers?.get?.("retry-after") != null);
}
