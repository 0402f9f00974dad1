// OpenAI's official Node SDK against the bridge with the real runtime
// (tests/live/openai.rs runs it on the runtime's own Node 22). Prints one
// JSON line of what it saw; the Rust test checks it.
//
//   node live.mjs <base url> <client token> chat|approval <agent> <conversation>
import OpenAI from "openai";

const [base, token, phase, agent, conversation] = process.argv.slice(2);
const headers = { "X-Letta-Conversation-Id": conversation };
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: token, maxRetries: 0, timeout: 60_000, defaultHeaders: headers });
const ask = (text) => ({ model: agent, messages: [{ role: "user", content: text }] });
const kind = async (call) => {
  try {
    await call();
    return "no error";
  } catch (e) {
    return `${e.constructor.name} ${e.status} ${e.code}`;
  }
};

const seen = {};
if (phase === "chat") {
  const completion = await client.chat.completions.create(ask("hi"));
  seen.content = completion.choices[0].message.content;
  seen.finish_reason = completion.choices[0].finish_reason;
  seen.usage = completion.usage ?? null;
  const stream = await client.chat.completions.create({ ...ask("again"), stream: true, stream_options: { include_usage: true } });
  seen.pieces = [];
  for await (const chunk of stream) {
    const piece = chunk.choices[0]?.delta?.content;
    if (piece) seen.pieces.push(piece);
    if (chunk.choices[0]?.finish_reason) seen.stream_finish = chunk.choices[0].finish_reason;
    if (chunk.usage) seen.stream_usage = chunk.usage;
  }
  const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
  seen.wrong_key = await kind(() => wrong.chat.completions.create(ask("hi")));
  seen.unknown_agent = await kind(() => client.chat.completions.create({ ...ask("hi"), model: "agent-nobody-knows" }));
  seen.response = (await client.responses.create({ model: agent, input: "and now?" })).output_text;
  seen.models = [];
  for await (const model of client.models.list()) seen.models.push(model.id);
} else {
  const completion = await client.chat.completions.create(ask("please create the file"));
  seen.content = completion.choices[0].message.content;
  seen.finish_reason = completion.choices[0].finish_reason;
}
console.log(JSON.stringify(seen));
