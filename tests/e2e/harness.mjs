// The pieces of the web console's end-to-end test (console.mjs): bounded
// waits, the bridge binary as a child process, a TCP proxy the test can cut,
// and the test kit's fake runtime (the `fake-runtime` binary of testkit/,
// the same recorded answers as the Rust tests' FakeRuntime).

import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';

export const STEP_MS = 10_000;

export class Failure extends Error {}
export function check(cond, msg) { if (!cond) throw new Failure(msg); }

/** Resolves `promise`, or rejects after `ms` naming `what`. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `fn` until it returns a truthy value, at most `ms`. */
export async function poll(ms, what, fn) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Failure(`timed out after ${ms} ms: ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
}

export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/**
 * A TCP proxy in front of the bridge for the browser, so the test can cut the
 * page's connections for real (`drop`) and hold new ones until `release`.
 */
export async function startProxy(targetPort) {
  const sockets = new Set();
  let held = [];
  let holding = false;
  const track = (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); };
  const server = net.createServer((client) => {
    track(client);
    const pipe = () => {
      if (client.destroyed) return;
      const upstream = net.connect(targetPort, '127.0.0.1');
      track(upstream);
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    };
    if (holding) held.push(pipe); else pipe();
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    drop() { holding = true; for (const s of sockets) s.destroy(); },
    release() { holding = false; const h = held; held = []; for (const pipe of h) pipe(); },
    close() { for (const s of sockets) s.destroy(); server.close(); },
  };
}

/** A child process that keeps its last output lines for the failure report. */
function startChild(bin, args, env, stdin = 'ignore') {
  const output = [];
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
  const keep = (chunk) => { output.push(chunk.toString()); if (output.length > 400) output.shift(); };
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (e) => output.push(`spawn error: ${e.message}\n`));
  return { child, output, exited, keep };
}

/** The bridge binary with these `LETTA_BRIDGE_*` settings. */
export function startBridge(bin, env) {
  const bridge = startChild(bin, [], { RUST_LOG: process.env.RUST_LOG || 'info', ...env });
  bridge.child.stdout.on('data', bridge.keep);
  return bridge;
}

/** SIGTERM, then SIGKILL if it lingers; resolves once it is gone. */
export async function stop(proc) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  try {
    await within(5_000, 'exit after SIGTERM', proc.exited);
  } catch {
    proc.child.kill('SIGKILL');
    await within(2_000, 'exit after SIGKILL', proc.exited).catch(() => {});
  }
}

/**
 * The kit's `fake-runtime` binary: `$FAKE_RUNTIME`, else built by cargo
 * (a no-op when `cargo test --workspace` already built it).
 */
export function fakeRuntimeBinary(root) {
  if (process.env.FAKE_RUNTIME) return path.resolve(process.env.FAKE_RUNTIME);
  const built = spawnSync('cargo', ['build', '--quiet', '-p', 'letta-bridge-testkit', '--bin', 'fake-runtime'],
    { cwd: root, stdio: 'inherit' });
  check(built.status === 0, `cargo build of fake-runtime failed (${built.error?.message ?? `exit ${built.status}`})`);
  return path.join(process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target'),
    'debug', 'fake-runtime');
}

/**
 * The fake runtime connected to `url`: it answers commands with the recorded
 * frames by itself; every frame it receives comes as a JSON line on its
 * stdout (`next` waits for one), and every line written to its stdin goes to
 * the bridge as a frame (`send`).
 */
export function startFakeRuntime(bin, url, token) {
  const rt = startChild(bin, ['--url', url, '--token', token], {}, 'pipe');
  const frames = [];
  const listeners = new Set();
  readline.createInterface({ input: rt.child.stdout }).on('line', (line) => {
    const frame = JSON.parse(line);
    frames.push(frame);
    for (const l of listeners) l(frame);
  });
  const gone = rt.exited.then(({ code, signal }) => {
    throw new Failure(`fake-runtime exited (${signal ?? code}): ${rt.output.join('').trim()}`);
  });
  gone.catch(() => {});
  return {
    ...rt,
    send(frame) { rt.child.stdin.write(`${JSON.stringify(frame)}\n`); },
    /** The first frame (received or to come) matching `pred`. */
    next(pred, what, ms = STEP_MS) {
      const seen = frames.find(pred);
      if (seen) return Promise.resolve(seen);
      let listener;
      const match = new Promise((resolve) => {
        listener = (f) => { if (pred(f)) resolve(f); };
        listeners.add(listener);
      });
      return within(ms, `the runtime to receive ${what}`, Promise.race([match, gone]))
        .finally(() => listeners.delete(listener));
    },
    /** Until the bridge answered the JSON ping it sends on connecting. */
    ready() { return this.next((f) => f.type === 'pong', 'the pong to its JSON ping'); },
    /** A short assistant turn, as the real runtime streams it. */
    turn(runtime, id, pieces, turnId) {
      for (const text of pieces) {
        this.send({ type: 'stream_delta', runtime, delta: { id, message_type: 'assistant_message', content: [{ type: 'text', text }] } });
      }
      this.send({ type: 'turn_finished', runtime, stop_reason: 'end_turn', turn_id: turnId });
    },
  };
}
