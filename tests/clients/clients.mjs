// Letta's own published clients, unmodified, pointed at the bridge: the
// pieces every scenario (run.mjs) uses. What a scenario learns it prints as
// one JSON line per step ({"step": name, ...}); the live test
// (tests/live/clients.rs) starts the bridge, the model server and the real
// runtime, runs a scenario, and judges the lines.
//
// - `AppServerClient`: from the pinned runtime package itself
//   (`@letta-ai/letta-code`, dist/app-server-client.js; its path comes in
//   APP_SERVER_CLIENT_JS), with the `ws` package as its WebSocket (Node's own
//   cannot send the bearer header).
// - `@letta-ai/letta-client` (npm, pinned in package.json): the REST client.

import { pathToFileURL } from 'node:url';

import Letta from '@letta-ai/letta-client';
import WebSocket from 'ws';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/** The bridge and its tokens, as the live test passes them. */
export const bridge = {
  url: env('LETTA_BRIDGE_URL'),
  ws: env('LETTA_BRIDGE_URL').replace(/^http/, 'ws'),
  clientToken: env('LETTA_BRIDGE_CLIENT_TOKEN'),
  adminToken: env('LETTA_BRIDGE_ADMIN_TOKEN'),
};

const { createAppServerClient } = await import(pathToFileURL(env('APP_SERVER_CLIENT_JS')).href);

/** How long one expectation may take. */
export const WAIT_MS = 20_000;

/** Prints one step's findings for the live test. */
export function report(step, fields = {}) {
  process.stdout.write(`${JSON.stringify({ step, ...fields })}\n`);
}

/** `letta-client` with the bridge as its base URL and `token` as its API key. */
export function lettaClient(token = bridge.clientToken) {
  return new Letta({ baseURL: bridge.url, apiKey: token, maxRetries: 0, timeout: WAIT_MS });
}

/** The relay socket's URL of a connection (placeholders before an agent exists). */
export function relayUrl(connectionId, { agentId = 'pending', conversationId = 'default', query = {} } = {}) {
  const url = new URL(`${bridge.ws}/v1/environments/${encodeURIComponent(connectionId)}/status/ws`);
  url.searchParams.set('agentId', agentId);
  url.searchParams.set('conversationId', conversationId);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  return url.toString();
}

/** The App-Server-compatible socket's URL (a full path: a bare base URL would mean /ws). */
export function appServerUrl(query = '') {
  return `${bridge.ws}/app-server/ws${query}`;
}

/**
 * An `AppServerClient` that keeps every frame it gets and acks every `seq`
 * at once, before anything else handles the frame (as Letta's own listener
 * client and the Agent SDK do; the library itself does not ack).
 */
export async function openClient(name, url, token) {
  const client = createAppServerClient({ url, authToken: token, WebSocket, requestTimeoutMs: WAIT_MS });
  const observed = { name, frames: [], acked: [], closed: null, client };
  const waiters = new Set();
  client.onMessage((message) => {
    if (typeof message.seq === 'number') {
      client.sendRaw({ type: 'ack', seq: message.seq });
      observed.acked.push(message.seq);
    }
    observed.frames.push(message);
    for (const waiter of [...waiters]) {
      if (waiter.matches(message)) {
        waiters.delete(waiter);
        waiter.resolve(message);
      }
    }
  });
  client.onDisconnect(({ event }) => {
    observed.closed = { code: event?.code ?? null, reason: String(event?.reason ?? '') };
  });
  /** The next frame (from now on) that `matches`, or a rejection after WAIT_MS. */
  observed.next = (what, matches) =>
    new Promise((resolve, reject) => {
      const waiter = { matches, resolve };
      waiters.add(waiter);
      setTimeout(() => {
        if (waiters.delete(waiter)) reject(new Error(`${name}: timed out waiting for ${what}`));
      }, WAIT_MS);
    });
  /** Waits for the socket to close (the bridge ends it); its close code and reason. */
  observed.closedSocket = () =>
    new Promise((resolve, reject) => {
      if (observed.closed) return resolve(observed.closed);
      const timer = setTimeout(() => reject(new Error(`${name}: the socket did not close`)), WAIT_MS);
      client.socket.once('close', (code, reason) => {
        clearTimeout(timer);
        resolve({ code, reason: reason.toString() });
      });
    });
  await client.connect();
  return observed;
}

/**
 * What a client saw, for the report: every frame in short (its relay `seq`,
 * type, request id, event_seq, scope, outcome, delta type), and the seqs it acked.
 */
export function seen(observed) {
  const short = (f) => ({
    seq: f.seq,
    type: f.type,
    request_id: f.request_id,
    event_seq: f.event_seq,
    runtime: f.runtime,
    success: f.success ?? f.accepted,
    message_type: f.delta?.message_type,
  });
  return { frames: observed.frames.map(short), acked: observed.acked };
}

/** True for a frame of `type` in `scope`'s conversation. */
export function inScope(type, scope) {
  return (frame) =>
    frame.type === type &&
    frame.runtime?.agent_id === scope.agent_id &&
    frame.runtime?.conversation_id === scope.conversation_id;
}

/** A user message for `scope`, as `submitInput` takes it. */
export function message(scope, text) {
  return { runtime: scope, payload: { kind: 'create_message', messages: [{ role: 'user', content: text }] } };
}

/** Sends a message with `client` and waits for its `input_accepted` and its turn's end. */
export async function turn(observed, scope, text) {
  const finished = observed.next('turn_finished', inScope('turn_finished', scope));
  const accepted = await observed.client.submitInput(message(scope, text));
  return { accepted, finished: await finished };
}

/** The assistant text of `frames`' deltas for one run. */
export function assistantText(frames, runId) {
  return frames
    .filter((f) => f.type === 'stream_delta' && f.delta?.message_type === 'assistant_message')
    .filter((f) => !runId || f.delta.run_id === runId)
    .map((f) => (typeof f.delta.content === 'string' ? f.delta.content : f.delta.content.map((p) => p.text ?? '').join('')))
    .join('');
}
