// A browser's own EventSource reconnect, end to end: a plain page on another
// origin opens `new EventSource(bridge + "/events?ticket=…")` and has no
// reconnect code of its own. The network is cut (a TCP proxy between the
// browser and the bridge drops every connection and holds new ones) while
// the runtime keeps sending; when the network is back the browser reconnects
// by itself with the same URL and `Last-Event-ID`, and the page must show
// every event once and in order, with the stream open again.
//
//   node tests/e2e/eventsource.mjs [path/to/letta-bridge]
//
// The fake runtime: $FAKE_RUNTIME, else built with cargo (harness.mjs).

import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { STEP_MS, Failure, check, freePort, kitProgram, poll, startBridge, startProxy, stop, within } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.argv[2] ? path.resolve(process.argv[2]) : path.join(ROOT, 'target', 'debug', 'letta-bridge');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKENS = { runtime: 'es-runtime-token-0123456789', client: 'es-client-token-0123456789', admin: 'es-admin-token-0123456789' };
const BEFORE = 5;
const DURING = 5;

// The whole page: what a web developer writes, and nothing about reconnects.
const PAGE = `<!doctype html><meta charset="utf-8"><ul id="out"></ul><script>
const { bridge, ticket } = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
const events = new EventSource(bridge + "/events?types=marker&ticket=" + ticket);
events.addEventListener("marker", (e) => {
  const li = document.createElement("li"); li.textContent = JSON.parse(e.data).i; out.append(li);
});
</script>`;

const log = (...a) => console.log('[eventsource]', ...a);

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lb-eventsource-'));
  const [bridgePort, pagePort] = [await freePort(), await freePort()];
  const pageOrigin = `http://127.0.0.1:${pagePort}`;
  const pageServer = http.createServer((_, res) => res.end(PAGE));
  await new Promise((r) => pageServer.listen(pagePort, '127.0.0.1', r));
  const bridge = startBridge(BIN, {
    LETTA_BRIDGE_LISTEN: `127.0.0.1:${bridgePort}`,
    LETTA_BRIDGE_RUNTIME_TOKEN: TOKENS.runtime,
    LETTA_BRIDGE_CLIENT_TOKEN: TOKENS.client,
    LETTA_BRIDGE_ADMIN_TOKEN: TOKENS.admin,
    LETTA_BRIDGE_CORS_ORIGINS: pageOrigin,
  });
  const base = `http://127.0.0.1:${bridgePort}`;
  let runtime;
  let browser;
  let proxy;
  try {
    await poll(STEP_MS, 'the bridge answers', async () => (await fetch(`${base}/healthz`)).ok);
    const fake = kitProgram(ROOT, 'fake-runtime', 'FAKE_RUNTIME');
    runtime = spawn(fake, ['--url', `ws://127.0.0.1:${bridgePort}/ws?deviceId=es-runtime`, '--token', TOKENS.runtime],
      { stdio: ['pipe', 'ignore', 'inherit'] });
    const emit = (i) => runtime.stdin.write(`${JSON.stringify({ type: 'marker', runtime: { agent_id: 'a', conversation_id: 'c' }, i })}\n`);
    await poll(STEP_MS, 'the runtime is online', async () => (await fetch(`${base}/readyz?runtimes=1`)).ok);

    proxy = await startProxy(bridgePort);
    const ticket = (await (await fetch(`${base}/tickets`, { method: 'POST', headers: { Authorization: `Bearer ${TOKENS.client}` } })).json()).ticket;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'] });
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${pageOrigin}/#bridge=${encodeURIComponent(`http://127.0.0.1:${proxy.port}`)}&ticket=${ticket}`);
    const shown = () => page.$$eval('#out li', (lis) => lis.map((li) => Number(li.textContent)));
    const readyState = () => page.evaluate(() => events.readyState);
    await poll(STEP_MS, 'the page stream is open', async () => (await readyState()) === 1);

    for (let i = 0; i < BEFORE; i++) emit(i);
    await poll(STEP_MS, `${BEFORE} events shown`, async () => (await shown()).length === BEFORE);
    log('the page got the first events; cutting the network');
    proxy.drop();
    await poll(STEP_MS, 'the browser notices the cut', async () => (await readyState()) !== 1);
    for (let i = BEFORE; i < BEFORE + DURING; i++) emit(i);
    // The browser retries on its own (retry: 1000 ms); let a few attempts fail while the network is out.
    await new Promise((r) => setTimeout(r, 1500));
    log('network back');
    proxy.release();
    await poll(STEP_MS * 2, 'the browser reconnected by itself and caught up', async () => (await shown()).length >= BEFORE + DURING);
    const got = await shown();
    check(JSON.stringify(got) === JSON.stringify([...Array(BEFORE + DURING).keys()]),
      `every event once, in order; the page shows ${JSON.stringify(got)}`);
    check((await readyState()) === 1, 'the stream is open again');
    emit(BEFORE + DURING);
    await poll(STEP_MS, 'a later event too', async () => (await shown()).length === BEFORE + DURING + 1);
    log(`passed: ${got.length + 1} events, once and in order, across a network cut with no page code for it`);
  } finally {
    if (browser) await within(5_000, 'browser close', browser.close()).catch(() => {});
    proxy?.close();
    runtime?.kill();
    await stop(bridge);
    pageServer.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e instanceof Failure ? `FAILED: ${e.message}` : e);
  process.exit(1);
});
