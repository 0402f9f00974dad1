// Type-checks a client written against the TypeScript types that
// openapi-typescript generates from openapi/openapi.json: if a schema the
// low-code and web clients rely on changes shape, this stops compiling.
// Fields are assigned to typed variables: event schemas allow extra
// properties (typed `unknown`), so only a typed use proves a field exists.
import type { components, paths } from "./generated/schema";

type Schemas = components["schemas"];

const input: Schemas["InputCommand"] = {
  runtime: { agent_id: "agent-local-1", conversation_id: "local-conv-1" },
  payload: { kind: "create_message", messages: [{ role: "user", content: "Hello" }] },
};

type Accepted = paths["/input"]["post"]["responses"][202]["content"]["application/json"];
type Reply = paths["/sync"]["post"]["responses"][200]["content"]["application/json"];
type Problem = paths["/input"]["post"]["responses"][422]["content"]["application/problem+json"];
type RuntimeList = paths["/runtimes"]["get"]["responses"][200]["content"]["application/json"];
type Turn = Schemas["TurnResult"];

export function accepted(a: Accepted): [string, string, string] {
  const requestId: string = a.request_id;
  const runtimeId: string = a.runtime_id;
  const cursor: string = a.cursor;
  return [requestId, runtimeId, cursor];
}

export function reply(r: Reply): string {
  const kind: string = r.type;
  const requestId: string = r.request_id;
  return `${kind} ${requestId}`;
}

export function problem(p: Problem): [number, string] {
  const status: number = p.status;
  const detail: string = p.detail;
  return [status, detail];
}

// POST /input?wait=completion: the finished turn in one answer.
export function finished(t: Turn): [string, string, string[]] {
  const text: string = t.text;
  const stop: string = t.stop_reason;
  const ids: string[] = t.event_ids;
  return [text, stop, ids];
}

export function onTurn(e: Schemas["TurnFinished"]): string {
  const stop: string = e.stop_reason;
  const runtime: string = e.runtime_id;
  return `${runtime}: ${stop}`;
}

export function onAccepted(e: Schemas["InputAccepted"]): boolean {
  const accepted: boolean = e.accepted;
  return accepted;
}

export function onStatus(e: Schemas["RuntimeOnline"] | Schemas["RuntimeOffline"]): string {
  const runtime: string = e.runtime_id;
  return runtime;
}

export function onReset(e: Schemas["Reset"]): string {
  const from: string = e.resume_from;
  return from;
}

export function online(list: RuntimeList): string[] {
  return list.filter((r) => r.online).map((r) => `${r.id} ${r.version ?? "?"}`);
}

export const body = JSON.stringify(input);
