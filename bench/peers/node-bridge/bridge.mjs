// The bridge a user would write by hand from Letta's "self-hosted remotes,
// direct mode" snippet: the runtime's WebSocket (ws) and a few REST routes
// plus one SSE stream on the same node:http server. It is the peer that
// `bench --peer` measures letta-bridge against (issue 14), so it is kept as
// plain as such a bridge would be: one runtime socket, every event written
// to every subscriber, no replay (Last-Event-ID is ignored), no filters, no
// limits, `res.write` backpressure ignored.
//
//   HOST=127.0.0.1 PORT=8284 REMOTE_TOKEN=… CLIENT_TOKEN=… node bridge.mjs
import http from "node:http";
import { randomUUID } from "node:crypto";
import { WebSocketServer } from "ws";

const host = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 8284);
const runtimeToken = process.env.REMOTE_TOKEN ?? "dev-token";
const clientToken = process.env.CLIENT_TOKEN ?? "dev-client-token";
// How long `?wait=true` waits for the runtime's reply.
const WAIT_MS = 5000;

// REST route → v2 command type.
const COMMANDS = { "/input": "input", "/sync": "sync", "/abort": "abort_message" };

let runtime = null; // the connected runtime's socket
const subscribers = new Set(); // open GET /events responses
const waiting = new Map(); // request_id → the ?wait=true response waiting for its reply
let lastId = 0;

const server = http.createServer(handle);
const wss = new WebSocketServer({ server });

wss.on("connection", (socket, request) => {
  if (request.headers.authorization !== `Bearer ${runtimeToken}`) {
    socket.close(1008, "unauthorized");
    return;
  }
  runtime = socket;
  socket.on("message", (raw) => {
    let frame;
    try {
      frame = JSON.parse(raw.toString());
    } catch {
      return;
    }
    // The runtime pings with JSON every 30 s and drops the socket without pongs.
    if (frame.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
      return;
    }
    publish(frame);
  });
  socket.on("close", () => {
    if (runtime === socket) runtime = null;
  });
});

// One runtime frame → every subscriber, and the ?wait=true request awaiting it.
function publish(frame) {
  const waiter = frame.request_id === undefined ? undefined : waiting.get(frame.request_id);
  if (waiter) {
    waiting.delete(frame.request_id);
    clearTimeout(waiter.timer);
    reply(waiter.res, 200, frame);
  }
  const chunk = `id: ${++lastId}\nevent: ${frame.type}\ndata: ${JSON.stringify(frame)}\n\n`;
  for (const res of subscribers) res.write(chunk);
}

function handle(req, res) {
  const url = new URL(req.url, "http://bridge");
  if (req.method === "GET" && url.pathname === "/healthz") return reply(res, 200, { ok: true });
  if (req.headers.authorization !== `Bearer ${clientToken}`) return reply(res, 401, { error: "unauthorized" });
  if (req.method === "GET" && url.pathname === "/events") return subscribe(req, res);
  const type = COMMANDS[url.pathname];
  if (req.method === "POST" && type) return command(type, url, req, res);
  reply(res, 404, { error: "not found" });
}

function subscribe(req, res) {
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
  res.write(": connected\n\n");
  subscribers.add(res);
  req.on("close", () => subscribers.delete(res));
}

function command(type, url, req, res) {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body;
    try {
      body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
    } catch {
      return reply(res, 400, { error: "body is not JSON" });
    }
    if (!runtime) return reply(res, 503, { error: "no runtime connected" });
    const request_id = body.request_id ?? randomUUID();
    runtime.send(JSON.stringify({ ...body, type, request_id }));
    if (url.searchParams.get("wait") !== "true") return reply(res, 202, { request_id });
    const timer = setTimeout(() => {
      waiting.delete(request_id);
      reply(res, 504, { error: "no reply from the runtime" });
    }, WAIT_MS);
    waiting.set(request_id, { res, timer });
  });
}

function reply(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

server.listen(port, host, () => console.log(`listening on http://${host}:${port}`));
