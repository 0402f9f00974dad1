// A feed's URL in a browser's own EventSource, end to end: the admin makes a
// feed (POST /feeds) and a plain page on another origin opens
// `new EventSource(bridge + url)` — the URL alone, as n8n's SSE Trigger
// takes it, with no reconnect code of its own. The network is cut (a TCP
// proxy drops every connection and holds new ones) while the runtime keeps
// sending; when it is back the browser reconnects by itself with the same
// URL and `Last-Event-ID`, and the page must show every event of the feed's
// filter once and in order. Then the feed is deleted: the stream ends at
// once, the browser's reconnect is refused (401) and EventSource gives up
// (readyState CLOSED), and nothing sent later is shown.
//
//   node tests/e2e/feeds.mjs [path/to/letta-bridge]
//
// The fake runtime: $FAKE_RUNTIME, else built with cargo (harness.mjs).

import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { STEP_MS, Failure, check, freePort, kitProgram, poll, startBridge, startProxy, stop, within } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.argv[2] ? path.resolve(process.argv[2]) : path.join(ROOT, 'target', 'debug', 'letta-bridge');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKENS = { runtime: 'fd-runtime-token-0123456789', client: 'fd-client-token-0123456789', admin: 'fd-admin-token-0123456789' };
const BEFORE = 5;
const DURING = 5;

// The whole page: the feed's URL and nothing else, no reconnect code.
const PAGE = `<!doctype html><meta charset="utf-8"><ul id="out"></ul><script>
const { url } = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
const events = new EventSource(url);
let errors = 0;
events.onerror = () => { errors += 1; };
events.addEventListener("marker", (e) => {
  const li = document.createElement("li"); li.textContent = JSON.parse(e.data).i; out.append(li);
});
</script>`;

const log = (...a) => console.log('[feeds]', ...a);

async function main() {
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
  const admin = { Authorization: `Bearer ${TOKENS.admin}`, 'Content-Type': 'application/json' };
  let runtime;
  let browser;
  let proxy;
  try {
    await poll(STEP_MS, 'the bridge answers', async () => (await fetch(`${base}/healthz`)).ok);
    const fake = kitProgram(ROOT, 'fake-runtime', 'FAKE_RUNTIME');
    runtime = spawn(fake, ['--url', `ws://127.0.0.1:${bridgePort}/ws?deviceId=fd-runtime`, '--token', TOKENS.runtime],
      { stdio: ['pipe', 'ignore', 'inherit'] });
    // Markers of conversation `c`, the feed's; `other` ones are not its.
    const emit = (i, conversation = 'c') => runtime.stdin.write(
      `${JSON.stringify({ type: 'marker', runtime: { agent_id: 'a', conversation_id: conversation }, i })}\n`);
    await poll(STEP_MS, 'the runtime is online', async () => (await fetch(`${base}/readyz?runtimes=1`)).ok);

    const made = await fetch(`${base}/feeds`, { method: 'POST', headers: admin,
      body: JSON.stringify({ filter: { conversation_id: 'c', types: ['marker'] }, name: 'e2e' }) });
    check(made.status === 201, `POST /feeds answers 201 (got ${made.status})`);
    const feed = await made.json();
    check(/^\/events\?feed=fd_[0-9a-f]{16}_[0-9a-f]{32}$/.test(feed.url), `a feed URL: ${feed.url}`);

    proxy = await startProxy(bridgePort);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'] });
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${pageOrigin}/#url=${encodeURIComponent(`http://127.0.0.1:${proxy.port}${feed.url}`)}`);
    const shown = () => page.$$eval('#out li', (lis) => lis.map((li) => Number(li.textContent)));
    const readyState = () => page.evaluate(() => events.readyState);
    await poll(STEP_MS, 'the page stream is open', async () => (await readyState()) === 1);

    for (let i = 0; i < BEFORE; i++) { emit(i); emit(100 + i, 'other'); }
    await poll(STEP_MS, `${BEFORE} events shown`, async () => (await shown()).length === BEFORE);
    log('the page got the first events; cutting the network');
    proxy.drop();
    await poll(STEP_MS, 'the browser notices the cut', async () => (await readyState()) !== 1);
    for (let i = BEFORE; i < BEFORE + DURING; i++) { emit(i); emit(100 + i, 'other'); }
    // The browser retries on its own (retry: 1000 ms); let a few attempts fail while the network is out.
    await new Promise((r) => setTimeout(r, 1500));
    log('network back');
    proxy.release();
    await poll(STEP_MS * 2, 'the browser reconnected by itself and caught up', async () => (await shown()).length >= BEFORE + DURING);
    emit(BEFORE + DURING);
    await poll(STEP_MS, 'a later event too', async () => (await shown()).length >= BEFORE + DURING + 1);
    const got = await shown();
    check(JSON.stringify(got) === JSON.stringify([...Array(BEFORE + DURING + 1).keys()]),
      `every event of the feed once, in order, none of another conversation; the page shows ${JSON.stringify(got)}`);
    check((await readyState()) === 1, 'the stream is open again');
    log(`${got.length} events once and in order across a network cut; deleting the feed`);

    const errorsBefore = await page.evaluate(() => errors);
    const deleted = await fetch(`${base}/feeds/${feed.id}`, { method: 'DELETE', headers: admin });
    check(deleted.status === 204, `DELETE /feeds/{id} answers 204 (got ${deleted.status})`);
    await poll(STEP_MS, 'the stream ended and the reconnect was refused (EventSource CLOSED)', async () => (await readyState()) === 2);
    check((await page.evaluate(() => errors)) > errorsBefore, 'the page saw the error');
    const refused = await fetch(`${base}${feed.url}`);
    check(refused.status === 401, `the feed URL is refused after the delete (got ${refused.status})`);
    emit(BEFORE + DURING + 1);
    await new Promise((r) => setTimeout(r, 300));
    check((await shown()).length === BEFORE + DURING + 1, 'nothing is shown after the delete');
    log('passed: the deleted feed ended the page\'s stream, and its reconnect was refused');
  } finally {
    if (browser) await within(5_000, 'browser close', browser.close()).catch(() => {});
    proxy?.close();
    runtime?.kill();
    await stop(bridge);
    pageServer.close();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e instanceof Failure ? `FAILED: ${e.message}` : e);
  process.exit(1);
});
