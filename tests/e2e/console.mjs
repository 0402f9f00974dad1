// End-to-end test of the web console (GET /): a real bridge binary, the
// test kit's fake Letta Code runtime (the `fake-runtime` binary of testkit/:
// it answers with the recorded frames; this script plays the assistant's
// turns through its stdin), and headless Chromium driven by playwright-core.
//
//   npm ci --prefix tests/e2e
//   node tests/e2e/console.mjs [path/to/letta-bridge]   (default target/debug/letta-bridge)
//
// The fake runtime: $FAKE_RUNTIME, else built with cargo (harness.mjs).
// Chromium: $CHROMIUM or /usr/bin/chromium (Debian package; never downloaded).
// Exit 0 on success; 1 with a message on failure. Every wait is bounded; the
// whole run is capped at DEADLINE_MS.

import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import {
  STEP_MS, Failure, check, fakeRuntimeBinary, freePort, poll, startBridge, startFakeRuntime, startProxy, stop, within,
} from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.argv[2] ? path.resolve(process.argv[2]) : path.join(ROOT, 'target', 'debug', 'letta-bridge');
const SCREENSHOT = path.join(ROOT, 'target', 'e2e', 'console.png');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
const TOKENS = {
  runtime: 'e2e-runtime-token-0123456789',
  client: 'e2e-client-token-0123456789',
  admin: 'e2e-admin-token-0123456789',
};
const DEADLINE_MS = 60_000;
const DEVICE = 'e2e-runtime';
const AGENT = 'agent-e2e';
const CONV = 'conv-e2e';
const MESSAGE = 'hello from the browser';

const started = Date.now();
const log = (...a) => console.log(`[e2e +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

/** The child processes, for the watchdog. */
const running = [];

async function main() {
  let bridge, proxy, runtime, context, userDataDir;
  const pageErrors = [];
  try {
    check(existsSync(BIN), `no bridge binary at ${BIN} (run \`cargo build\` first, or pass its path)`);
    const port = await freePort();
    const http = `http://127.0.0.1:${port}`;
    log(`bridge ${BIN} on ${http}`);
    bridge = startBridge(BIN, {
      LETTA_BRIDGE_LISTEN: `127.0.0.1:${port}`,
      LETTA_BRIDGE_RUNTIME_TOKEN: TOKENS.runtime,
      LETTA_BRIDGE_CLIENT_TOKEN: TOKENS.client,
      LETTA_BRIDGE_ADMIN_TOKEN: TOKENS.admin,
    });
    running.push(bridge.child);
    await poll(STEP_MS, 'GET /healthz answers 200', async () => {
      if (bridge.child.exitCode !== null) throw new Failure(`the bridge exited with code ${bridge.child.exitCode}`);
      const res = await fetch(`${http}/healthz`);
      return res.ok;
    }).catch((e) => { throw bridge.child.exitCode !== null ? new Failure(`the bridge exited with code ${bridge.child.exitCode}`) : e; });

    const url = `ws://127.0.0.1:${port}/ws?deviceId=${DEVICE}&connectionName=e2e`;
    runtime = startFakeRuntime(fakeRuntimeBinary(ROOT), url, TOKENS.runtime);
    running.push(runtime.child);
    await runtime.ready();
    log('fake runtime connected');

    // The browser goes through a proxy (same origin for the page) so the
    // resume check below can cut its connections.
    proxy = await startProxy(port);
    const pageUrl = `http://127.0.0.1:${proxy.port}/`;

    userDataDir = await mkdtemp(path.join(os.tmpdir(), 'letta-bridge-e2e-'));
    context = await within(STEP_MS * 2, 'Chromium launch', chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1200, height: 760 },
    }));
    const page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    const eventUrls = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/events') eventUrls.push(u);
    });

    await page.goto(pageUrl, { waitUntil: 'load' });
    await page.fill('#token', TOKENS.client);
    await page.click('#connect');
    await page.waitForSelector(`#runtimes li[data-runtime-id="${DEVICE}"][data-online="true"]`);
    await page.waitForSelector('#stream-state[data-state="live"]');
    log('console connected: runtime online, stream live');

    await page.fill('#agent-id', AGENT);
    await page.fill('#conversation-id', CONV);
    await page.fill('#message', MESSAGE);
    await page.click('#send');

    const input = await runtime.next((f) => f.type === 'input', 'an input frame');
    check(input.payload?.kind === 'create_message', `payload.kind is ${JSON.stringify(input.payload?.kind)}`);
    check(input.payload?.messages?.[0]?.content === MESSAGE,
      `payload.messages[0].content is ${JSON.stringify(input.payload?.messages?.[0]?.content)}, want ${JSON.stringify(MESSAGE)}`);
    check(input.runtime?.agent_id === AGENT, `runtime.agent_id is ${JSON.stringify(input.runtime?.agent_id)}`);
    check(input.runtime?.conversation_id === CONV, `runtime.conversation_id is ${JSON.stringify(input.runtime?.conversation_id)}`);
    log(`runtime received input ${input.request_id}`);
    // It answered input_accepted by itself (recorded); the turn is scripted here.
    runtime.turn(input.runtime, 'msg-1', ['Hello ', 'from the runtime'], 't1');

    await expectText(page, '#events .assistant', 'Hello from the runtime');
    await expectText(page, '#events details[data-type="turn_finished"] .stop-reason', 'end_turn');
    await expectText(page, '#events .user', MESSAGE);
    await page.waitForSelector('#events details[data-type="input_accepted"]');
    const assistantCount = await page.locator('#events .assistant').count();
    check(assistantCount === 1, `deltas of one message should share one bubble; found ${assistantCount} bubbles`);
    const row = page.locator('#events details[data-type="turn_finished"]').first();
    await row.locator('summary').click();
    await expectText(page, '#events details[data-type="turn_finished"][open] pre', null, /"stop_reason": "end_turn"/);
    const status = await page.textContent('#status');
    check(/Accepted: \S+ → e2e-runtime/.test(status ?? ''), `#status says ${JSON.stringify(status)}`);
    log('first turn rendered');

    // Resume: cut the page's connections, let the runtime stream a turn while
    // the page is away, and expect the console to fetch a new ticket and
    // replay the gap with last_event_id.
    const lastSeen = await page.locator('#events details[data-type="turn_finished"] .id').last().textContent();
    const published = Number(lastSeen.split('-').pop());
    const errorsBefore = pageErrors.length;
    proxy.drop();
    await page.waitForSelector('#stream-state[data-state="reconnecting"]');
    runtime.turn({ agent_id: AGENT, conversation_id: CONV }, 'msg-2', ['Resumed ', 'after a drop'], 't2');
    await poll(STEP_MS, 'the bridge to publish the second turn', async () => {
      const res = await fetch(`${http}/status`, { headers: { Authorization: `Bearer ${TOKENS.client}` } });
      return (await res.json()).events.events_published >= published + 3;
    });
    proxy.release();
    await page.waitForSelector('#stream-state[data-state="live"]');
    await expectText(page, '#events .assistant', 'Resumed after a drop');
    const turns = await page.locator('#events details[data-type="turn_finished"]').count();
    check(turns === 2, `expected 2 turn_finished rows after the resume (no gap, no duplicate), found ${turns}`);
    check(eventUrls.length >= 2, `expected a second GET /events, saw ${eventUrls.length}`);
    const resumed = eventUrls.at(-1);
    check(resumed.searchParams.get('last_event_id') === lastSeen,
      `the reconnect asked for last_event_id=${resumed.searchParams.get('last_event_id')}, want ${lastSeen}`);
    check(resumed.searchParams.get('ticket') !== eventUrls[0].searchParams.get('ticket'), 'the reconnect reused a ticket');
    for (const u of eventUrls) check(!u.search.includes(TOKENS.client), 'the client token appeared in an /events URL');
    // Chromium itself logs the cut stream ("Failed to load resource:
    // net::ERR_INCOMPLETE_CHUNKED_ENCODING"); the page cannot prevent that.
    // Only that network message is expected from the drop.
    const dropNoise = /^console: Failed to load resource: net::ERR_(INCOMPLETE_CHUNKED_ENCODING|CONNECTION_RESET|EMPTY_RESPONSE)/;
    pageErrors.splice(errorsBefore, Infinity, ...pageErrors.slice(errorsBefore).filter((e) => !dropNoise.test(e)));
    log(`resumed after ${lastSeen} with a new ticket`);

    check(pageErrors.length === 0, `the page logged errors:\n  ${pageErrors.join('\n  ')}`);

    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    log(`screenshot: ${SCREENSHOT}`);
    log(`PASS in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    console.error(`\nFAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
    if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
    if (bridge) console.error(`--- bridge output (last lines) ---\n${bridge.output.join('').split('\n').slice(-40).join('\n')}`);
    if (runtime) console.error(`--- fake-runtime stderr ---\n${runtime.output.join('')}`);
    process.exitCode = 1;
  } finally {
    if (context) await within(5_000, 'browser close', context.close()).catch((e) => console.error(e.message));
    proxy?.close();
    await stop(runtime);
    await stop(bridge);
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }
}

/** Waits until some element matching `selector` has exactly `text` (or text matching `re`). */
async function expectText(page, selector, text, re = null) {
  try {
    await page.waitForFunction(([sel, want, src]) => [...document.querySelectorAll(sel)]
      .some((e) => (src ? new RegExp(src).test(e.textContent) : e.textContent === want)),
    [selector, text, re?.source ?? null], { timeout: STEP_MS });
  } catch {
    const seen = await page.$$eval(selector, (es) => es.map((e) => e.textContent)).catch(() => []);
    throw new Failure(`no ${selector} with text ${re ?? JSON.stringify(text)}; found ${JSON.stringify(seen)}`);
  }
}

const watchdog = setTimeout(() => {
  console.error(`FAIL: overall deadline of ${DEADLINE_MS / 1000} s exceeded`);
  for (const child of running) child.kill('SIGKILL');
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();
await main();
clearTimeout(watchdog);
