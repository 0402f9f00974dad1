// Two end users in real Chromium (issue 21): Alice's and Bob's pages, each
// with a stream ticket minted from its own user token (an HS256 JWT the
// app's backend — this script — mints), against the bridge binary and the
// kit's fake runtime emitting events into both conversations. Alice's page
// has the conversation filter removed from its URL. It must never show an
// event of Bob's conversation: live, in the replay after her token expires,
// nor after a `reset`; her `POST /input` into Bob's conversation is `403`
// (into hers `202`, and only hers reaches the runtime); at her token's `exp`
// her stream gets `reauth` (`token_expired`), the page gets a fresh token
// and ticket, resumes with `?last_event_id=` and misses nothing. A third
// page, the operator's, runs the same page code with the client token: it
// shows both users' events, the truth the others are checked against (and
// proof that the page shows Bob's events whenever they are delivered).
//
//   node tests/e2e/users.mjs [path/to/letta-bridge]
//
// The page: tests/e2e/users.html. The fake runtime: $FAKE_RUNTIME, else
// built with cargo (harness.mjs). Chromium: $CHROMIUM or /usr/bin/chromium.
// Screenshots of Alice's and Bob's pages per state: target/e2e/users/.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { STEP_MS, Failure, check, freePort, kitProgram, poll, startBridge, stop, within } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BIN = process.argv[2] ? path.resolve(process.argv[2]) : path.join(ROOT, 'target', 'debug', 'letta-bridge');
const SHOTS = path.join(ROOT, 'target', 'e2e', 'users');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PAGE = readFileSync(path.join(HERE, 'users.html'));
const TOKENS = { runtime: 'users-runtime-token-0123456789', client: 'users-client-token-0123456789', admin: 'users-admin-token-0123456789' };
/** LETTA_BRIDGE_USER_TOKEN_SECRET: the key the app's backend and the bridge share. */
const SECRET = 'users-e2e-user-token-secret-0123456789abcdef';
/** Events the replay ring keeps: more than a token's gap below, fewer than the gap before the reset. */
const RING = 12;
/** Lives of Alice's tokens, in seconds: the first covers the live part, the second only the resume. */
const FIRST_LIFE = 5;
const SHORT_LIFE = 3;
const LONG_LIFE = 600;
const DEADLINE_MS = 60_000;
/** Each user's one conversation (of agent `agent-1` on runtime `dev-1`). */
const CONVERSATION = { alice: 'conv-a', bob: 'conv-b' };

const started = Date.now();
const log = (...a) => console.log(`[users +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

/** An HS256 JWT, as an app's backend mints it (RFC 7519 with Node's own HMAC). */
function jwt(claims) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${signed}.${createHmac('sha256', SECRET).update(signed).digest('base64url')}`;
}

let minted = 0;
/** `user`'s token: every action on their own conversation, for `life` seconds. */
function userToken(user, life) {
  return jwt({
    sub: user, aud: 'letta-bridge', exp: Math.floor(Date.now() / 1000) + life, jti: `${user}-${++minted}`,
    authorization_details: [{ type: 'letta-bridge', actions: ['read', 'input', 'approve', 'abort', 'sync'],
      scopes: [{ runtime: 'dev-1', agent_id: 'agent-1', conversation_id: CONVERSATION[user] }] }],
  });
}

/**
 * The app's backend, on the pages' origin: the page (GET /) and each user's
 * token (GET /token?user=). The operator gets the client token, Bob a long
 * token at once. Alice's requests wait until the test answers them
 * (`answer`, with a token of the life it chooses), so the test acts while
 * her page waits for a token, and no token expires before the test expects.
 */
async function startBackend() {
  const waiting = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://page');
    if (url.pathname === '/') return res.end(PAGE);
    const user = url.searchParams.get('user');
    if (url.pathname !== '/token') { res.statusCode = 404; return res.end(); }
    if (user === 'operator') return res.end(TOKENS.client);
    if (user === 'bob') return res.end(userToken(user, LONG_LIFE));
    if (user === 'alice') return waiting.push(res);
    res.statusCode = 404;
    res.end();
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${port}`,
    /** True while Alice's page waits for a token. */
    asked() { return waiting.length > 0; },
    /** Answers Alice's waiting requests with tokens living `seconds`. */
    answer(seconds) { for (const res of waiting.splice(0)) res.end(userToken('alice', seconds)); },
    close() { for (const res of waiting) res.destroy(); server.close(); },
  };
}

const seqOf = (id) => Number(String(id).split('-').pop());
const markersOf = (state) => state.seen.filter((e) => e.type === 'marker');
const label = (e) => `${e.user}#${e.i}@${e.id}`;

async function main() {
  check(existsSync(BIN), `no bridge binary at ${BIN} (run \`cargo build\` first, or pass its path)`);
  await rm(SHOTS, { recursive: true, force: true });
  await mkdir(SHOTS, { recursive: true });
  const backend = await startBackend();
  const bridgePort = await freePort();
  const base = `http://127.0.0.1:${bridgePort}`;
  const bridge = startBridge(BIN, {
    LETTA_BRIDGE_LISTEN: `127.0.0.1:${bridgePort}`,
    LETTA_BRIDGE_RUNTIME_TOKEN: TOKENS.runtime,
    LETTA_BRIDGE_CLIENT_TOKEN: TOKENS.client,
    LETTA_BRIDGE_ADMIN_TOKEN: TOKENS.admin,
    LETTA_BRIDGE_USER_TOKEN_SECRET: SECRET,
    LETTA_BRIDGE_CORS_ORIGINS: backend.origin,
    LETTA_BRIDGE_REPLAY_EVENTS: String(RING),
  });
  let runtime;
  let browser;
  const pages = {};
  const pageErrors = [];
  let state = 'setup';
  const shot = async (n, name) => {
    state = `${String(n).padStart(2, '0')}-${name}`;
    for (const user of ['alice', 'bob']) await pages[user].screenshot({ path: path.join(SHOTS, `${state}-${user}.png`) });
    log(`reached ${state}`);
  };
  try {
    await poll(STEP_MS, 'the bridge answers', async () => (await fetch(`${base}/healthz`)).ok);
    // Quiet: the runtime sends only what this script writes to it, so the
    // streams hold exactly the events emitted here.
    runtime = spawn(kitProgram(ROOT, 'fake-runtime', 'FAKE_RUNTIME'),
      ['--url', `ws://127.0.0.1:${bridgePort}/ws?deviceId=dev-1`, '--token', TOKENS.runtime, '--quiet'],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    /** The frames the bridge sent the runtime. */
    const frames = [];
    readline.createInterface({ input: runtime.stdout }).on('line', (l) => { try { frames.push(JSON.parse(l)); } catch { /* a note */ } });
    await poll(STEP_MS, 'the runtime is online', async () => (await fetch(`${base}/readyz?runtimes=1`)).ok);
    const next = { alice: 0, bob: 0 };
    /** One event of `user`'s conversation, numbered per user. */
    const emit = (user) => {
      const i = next[user]++;
      runtime.stdin.write(`${JSON.stringify({ type: 'marker', runtime: { agent_id: 'agent-1', conversation_id: CONVERSATION[user] }, user, i, text: `${user} #${i}` })}\n`);
    };
    /** Bob's and Alice's events in turn, `n` of each, Alice's last. */
    const interleave = (n) => { for (let k = 0; k < n; k++) { emit('bob'); emit('alice'); } };

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'] });
    const query = { operator: '', alice: '', bob: '&conversation=conv-b' };
    for (const user of ['operator', 'alice', 'bob']) {
      const page = await (await browser.newContext({ viewport: { width: 640, height: 520 } })).newPage();
      page.on('pageerror', (e) => pageErrors.push(`${user}: ${e.message}`));
      await page.goto(`${backend.origin}/?user=${user}&bridge=${encodeURIComponent(base)}${query[user]}`);
      pages[user] = page;
    }
    const look = (user) => pages[user].evaluate(() => ({ seen, notices, opened }));
    /** Polls `user`'s page until `pred(state)`; a failure of the page's own code fails at once. */
    const until = async (user, what, pred) => {
      const failed = (s) => s.notices.find((n) => n.type === 'error');
      const s = await poll(STEP_MS, `${user}'s page: ${what}`, async () => {
        const s = await look(user);
        return (failed(s) || pred(s)) && s;
      });
      if (failed(s)) throw new Failure(`${user}'s page failed: ${failed(s).message}`);
      return s;
    };
    const shown = (user, n) => until(user, `${n} events shown`, (s) => markersOf(s).length >= n);
    await poll(STEP_MS, "Alice's page asks for her token", async () => backend.asked());
    backend.answer(FIRST_LIFE);
    for (const user of Object.keys(pages)) await until(user, 'its stream is open', (s) => s.opened.length === 1);

    // Live: Alice's stream, with no filter, shows only her events.
    interleave(3);
    await shown('operator', 6);
    await shown('bob', 3);
    const live = markersOf(await shown('alice', 3));
    check(live.every((e) => e.user === 'alice' && e.conversation === 'conv-a'),
      `live, Alice's page shows only her conversation; it shows ${live.map(label)}`);
    // Her messages: into Bob's conversation refused, into hers sent.
    const refused = await pages.alice.evaluate(() => send('conv-b'));
    check(refused.status === 403, `Alice's POST /input into Bob's conversation: want 403, got ${refused.status} ${refused.body}`);
    const problem = JSON.parse(refused.body);
    check(problem.type === 'urn:letta-bridge:insufficient-scope' && problem.missing?.conversation_id === 'conv-b'
      && problem.missing?.action === 'input', `the 403 names the missing grant: ${refused.body}`);
    const sent = await pages.alice.evaluate(() => send('conv-a'));
    check(sent.status === 202, `Alice's POST /input into her own conversation: want 202, got ${sent.status} ${sent.body}`);
    await poll(STEP_MS, 'her message reaches the runtime', async () => frames.some((f) => f.type === 'input'));
    const inputs = frames.filter((f) => f.type === 'input').map((f) => f.runtime?.conversation_id);
    check(JSON.stringify(inputs) === '["conv-a"]', `only her own message reaches the runtime; it got ${JSON.stringify(inputs)}`);
    await shot(1, 'live');

    // Her token expires: `reauth`. While the page waits for a fresh token,
    // both users go on; the page resumes after the `reauth` and misses nothing.
    const expired = (await until('alice', 'reauth at exp, then a token asked for', (s) => s.notices.length === 1 && backend.asked())).notices[0];
    check(expired.type === 'reauth' && expired.reason === 'token_expired', `the stream ends with reauth token_expired: ${JSON.stringify(expired)}`);
    check(seqOf(expired.id) >= seqOf(live.at(-1).id), `reauth ${expired.id} comes after everything she was sent`);
    interleave(3);
    await shown('operator', 12);
    await shown('bob', 6);
    await shot(2, 'reauth');
    backend.answer(SHORT_LIFE);
    let s = await until('alice', 'resumed with a fresh ticket after the reauth', (s) => s.opened.length === 2 && markersOf(s).length >= 6);
    check(s.opened[1] === expired.id, `the page resumed after the reauth's id: ${JSON.stringify(s.opened)}`);
    interleave(1);
    s = await shown('alice', 7);
    const resumed = markersOf(s);
    check(JSON.stringify(resumed.map((e) => `${e.user}#${e.i}`)) === JSON.stringify([...Array(7).keys()].map((i) => `alice#${i}`)),
      `every one of Alice's events once and in order, none of Bob's, across the reauth; she has ${resumed.map(label)}`);
    await shot(3, 'resumed');

    // Her second token expires; while she waits, more events than the ring
    // keeps: her resume cursor is gone, the bridge answers `reset`, and the
    // page reads what the ring still holds (from just before `oldest`).
    const second = (await until('alice', 'a second reauth, then a token asked for', (s) => s.notices.length === 2 && backend.asked())).notices[1];
    check(second.type === 'reauth' && second.reason === 'token_expired', `the second ending: ${JSON.stringify(second)}`);
    // In thirds, so that the live readers (Bob's and the operator's) never lag.
    for (let third = 1; third <= 3; third++) {
      interleave(RING / 4);
      await shown('operator', 14 + third * RING / 2);
      await shown('bob', 7 + third * RING / 4);
    }
    backend.answer(LONG_LIFE);
    // At the `reset` the page asks for a token again, to read what is held.
    await until('alice', 'a reset, then a token asked for', (s) => s.notices.length === 3 && backend.asked());
    backend.answer(LONG_LIFE);
    s = await until('alice', `what the ring held, to her last event (#${next.alice - 1})`,
      (s) => markersOf(s).at(-1)?.i === next.alice - 1);
    const reset = s.notices[2];
    check(reset.type === 'reset' && reset.reason === 'expired_cursor' && reset.oldest,
      `resuming from a cursor the ring no longer holds: reset expired_cursor with oldest; got ${JSON.stringify(s.notices.slice(2))}`);
    const [epoch, oldest] = reset.oldest.split('-');
    check(JSON.stringify(s.opened.slice(2)) === JSON.stringify([second.id, `${epoch}-${oldest - 1}`]),
      `the page resumed after the second reauth, then from just before \`oldest\`: ${JSON.stringify(s.opened)}`);
    const truth = markersOf(await look('operator'));
    const held = truth.filter((e) => seqOf(e.id) >= seqOf(reset.oldest));
    check(held.some((e) => e.user === 'bob'), `the ring read after the reset holds Bob's events too: ${held.map(label)}`);
    const afterReset = markersOf(s).slice(resumed.length);
    const want = held.filter((e) => e.user === 'alice');
    check(JSON.stringify(afterReset.map(label)) === JSON.stringify(want.map(label)),
      `after the reset, exactly Alice's events the ring still held, in order: want ${want.map(label)}, she has ${afterReset.map(label)}`);
    interleave(1);
    s = await shown('alice', resumed.length + afterReset.length + 1);
    await shown('bob', next.bob);
    await shot(4, 'after-reset');

    // The whole run: Alice's page never showed an event of Bob's
    // conversation, nor one twice or out of order; Bob's showed all of his.
    const all = markersOf(s);
    check(all.every((e) => e.user === 'alice' && e.conversation === 'conv-a') && new Set(all.map((e) => e.i)).size === all.length,
      `Alice's page: only her events, each once; it shows ${all.map(label)}`);
    check(all.every((e, k) => k === 0 || seqOf(e.id) > seqOf(all[k - 1].id)), `Alice's page: in order (${all.map(label)})`);
    const bobs = markersOf(await look('bob'));
    check(JSON.stringify(bobs.map((e) => `${e.user}#${e.i}`)) === JSON.stringify([...Array(next.bob).keys()].map((i) => `bob#${i}`)),
      `Bob's page: all of his events once and in order, none of Alice's: ${bobs.map(label)}`);
    const operator = await look('operator');
    check(markersOf(operator).length === next.alice + next.bob && operator.notices.length === 0,
      `the operator's page (client token) shows every event of both: ${markersOf(operator).length} of ${next.alice + next.bob}, notices ${JSON.stringify(operator.notices)}`);
    check(pageErrors.length === 0, `the pages logged errors:\n  ${pageErrors.join('\n  ')}`);
    log(`passed: Alice saw ${all.length} of her ${next.alice} events (${next.alice - all.length} left the ring before her reset) and none of Bob's ${next.bob}; screenshots in ${path.relative(ROOT, SHOTS)}/`);
  } catch (e) {
    for (const [user, page] of Object.entries(pages)) {
      await within(5_000, 'failure screenshot', page.screenshot({ path: path.join(SHOTS, `FAILED-${state}-${user}.png`) })).catch(() => {});
      const seen = await page.evaluate(() => ({ seen, notices, opened })).catch(() => null);
      if (seen) console.error(`${user}'s page: ${JSON.stringify(seen)}`);
    }
    console.error(`--- bridge output (last lines) ---\n${bridge.output.join('').split('\n').slice(-30).join('\n')}`);
    throw e;
  } finally {
    if (browser) await within(5_000, 'browser close', browser.close()).catch(() => {});
    runtime?.kill();
    await stop(bridge);
    backend.close();
  }
}

const watchdog = setTimeout(() => { console.error(`FAILED: overall deadline of ${DEADLINE_MS / 1000} s exceeded`); process.exit(1); }, DEADLINE_MS);
watchdog.unref();
main().then(() => { clearTimeout(watchdog); process.exit(0); }, (e) => {
  console.error(e instanceof Failure ? `FAILED: ${e.message}` : e);
  process.exit(1);
});
