// The pieces of the web console's end-to-end test (console.mjs): bounded
// waits, the bridge binary as a child process, a TCP proxy the test can cut,
// the test kit's scripted model server (the `model-server` program of
// testkit/) and the real Letta Code runtime (`letta remote --backend local`,
// run as tests/live runs it).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
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

/**
 * A child process that keeps its last output lines for the failure report.
 * `group`: in a process group of its own, so `stop` also ends what it started.
 */
function startChild(bin, args, { env = {}, stdin = 'ignore', cwd, group = false } = {}) {
  const output = [];
  const child = spawn(bin, args, { env: { ...process.env, ...env }, cwd, detached: group, stdio: [stdin, 'pipe', 'pipe'] });
  const keep = (chunk) => { output.push(chunk.toString()); if (output.length > 400) output.shift(); };
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (e) => output.push(`spawn error: ${e.message}\n`));
  return { child, output, exited, keep, group };
}

/** The bridge binary with these `LETTA_BRIDGE_*` settings. */
export function startBridge(bin, env) {
  const bridge = startChild(bin, [], { env: { RUST_LOG: process.env.RUST_LOG || 'info', ...env } });
  bridge.child.stdout.on('data', bridge.keep);
  return bridge;
}

/** SIGTERM (to its group, if it has one), then SIGKILL if it lingers; resolves once it is gone. */
export async function stop(proc) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const signal = (sig) => {
    try { if (proc.group) process.kill(-proc.child.pid, sig); else proc.child.kill(sig); } catch { /* gone */ }
  };
  signal('SIGTERM');
  try {
    await within(5_000, 'exit after SIGTERM', proc.exited);
  } catch {
    signal('SIGKILL');
    await within(2_000, 'exit after SIGKILL', proc.exited).catch(() => {});
  }
}

/**
 * A program of the test kit (testkit/src/bin): `$<ENV>` when set, else built
 * by cargo (a no-op when `cargo test --workspace` already built it).
 */
export function kitProgram(root, name, envVar) {
  if (process.env[envVar]) return path.resolve(process.env[envVar]);
  const built = spawnSync('cargo', ['build', '--quiet', '-p', 'letta-bridge-testkit', '--bin', name],
    { cwd: root, stdio: 'inherit' });
  check(built.status === 0, `cargo build of ${name} failed (${built.error?.message ?? `exit ${built.status}`})`);
  return path.join(process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target'),
    'debug', name);
}

/** JSON lines from a child's stdout: `lines`, and `next(pred)` to await one. */
function jsonLines(proc, what) {
  const lines = [];
  const listeners = new Set();
  readline.createInterface({ input: proc.child.stdout }).on('line', (line) => {
    proc.keep(`${line}\n`);
    let value;
    try { value = JSON.parse(line); } catch { return; }
    lines.push(value);
    for (const l of listeners) l(value);
  });
  const gone = proc.exited.then(({ code, signal }) => {
    throw new Failure(`${what} exited (${signal ?? code}): ${proc.output.join('').trim().slice(-2000)}`);
  });
  gone.catch(() => {});
  /** The first line from index `from` on matching `pred`, seen or to come. */
  const next = (pred, waitingFor, ms = STEP_MS, from = 0) => {
    const seen = lines.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    let listener;
    const match = new Promise((resolve) => {
      listener = (v) => { if (pred(v)) resolve(v); };
      listeners.add(listener);
    });
    return within(ms, waitingFor, Promise.race([match, gone])).finally(() => listeners.delete(listener));
  };
  return { lines, next };
}

/**
 * The kit's `model-server`: an OpenAI-compatible model on loopback that
 * streams the scripted replies (`{"text": [...], "delay_ms", "tool_call",
 * "then"}`, see testkit/src/bin/model_server.rs). `plan(replies)` sets the
 * replies for the next chat completions; `chat(what)` awaits the next chat
 * completion after the plan (`{chat, after_tool, user}`).
 */
export async function startModelServer(bin) {
  const proc = startChild(bin, [], { stdin: 'pipe' });
  const { lines, next } = jsonLines(proc, 'model-server');
  const { url } = await next((l) => typeof l.url === 'string', 'model-server to print its URL');
  let planAt = 0;
  return {
    ...proc,
    url,
    /** Replaces the plan; resolves once the server has it. */
    async plan(replies) {
      const from = lines.length;
      proc.child.stdin.write(`${JSON.stringify({ plan: replies })}\n`);
      await next((l) => l.plan === replies.length, 'model-server to take the plan', STEP_MS, from);
      planAt = lines.length;
    },
    /** The first chat completion since the last plan (after `skip` others). */
    chat(what, { ms = STEP_MS, skip = 0 } = {}) {
      let n = 0;
      return next((l) => typeof l.chat === 'number' && n++ === skip, `the model to get ${what}`, ms, planAt);
    },
    /** Closing stdin ends it. */
    async close() {
      proc.child.stdin.end();
      await within(5_000, 'model-server exit', proc.exited).catch(() => stop(proc));
    },
  };
}

/** The real runtime's launcher: `$LETTA_CODE_BIN`, else where `.ci/letta-runtime` installs it. */
export function lettaLauncher(root) {
  const at = process.env.LETTA_CODE_BIN || path.join(root, '.ci', 'cache', 'letta-code-0.32.18', 'bin', 'letta');
  check(existsSync(at), `no Letta Code runtime at ${at}: install it with \`.ci/letta-runtime\` (it prints the launcher's path; export it as LETTA_CODE_BIN)`);
  return at;
}

/**
 * `letta remote --backend local` against the bridge, as tests/live runs it:
 * a throwaway HOME as its working directory, the bridge's runtime token as
 * LETTA_API_KEY, the model server as LMSTUDIO_BASE_URL. Its output goes to
 * `<home>.log`; `log()` reads it back for the failure report.
 */
export function startLettaRuntime(launcher, { bridgeUrl, token, modelUrl, home, envName = 'e2e' }) {
  mkdirSync(home, { recursive: true });
  const logPath = `${home}.log`;
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !k.startsWith('LETTA_') && !k.startsWith('LMSTUDIO_') && k !== 'NODE_OPTIONS'));
  Object.assign(env, {
    HOME: home, LETTA_BASE_URL: bridgeUrl, IGNORE_SELF_HOSTED_LISTENER_ERROR: '1', LETTA_API_KEY: token,
    LMSTUDIO_BASE_URL: modelUrl, NO_PROXY: '127.0.0.1,localhost', NO_COLOR: '1',
  });
  const fd = openSync(logPath, 'a');
  const child = spawn(launcher, ['remote', '--env-name', envName, '--backend', 'local', '--debug'],
    { cwd: home, env, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const output = [];
  child.once('error', (e) => output.push(`spawn error: ${e.message}\n`));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child, output, exited, group: true, home,
    log() { try { return readFileSync(logPath, 'utf8'); } catch { return output.join(''); } },
  };
}
