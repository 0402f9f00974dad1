// End-to-end test of the web console (GET /): a whole session driven like a
// user in headless Chromium (playwright-core) against the bridge binary, the
// REAL Letta Code runtime (`letta remote --backend local`, as tests/live runs
// it) and the test kit's scripted model server (`model-server`, testkit/).
//
//   npm ci --prefix tests/e2e
//   node tests/e2e/console.mjs [path/to/letta-bridge]   (default target/debug/letta-bridge)
//
// The runtime: $LETTA_CODE_BIN, else the one `.ci/letta-runtime` installs.
// The model server: $MODEL_SERVER, else built with cargo (harness.mjs).
// Chromium: $CHROMIUM or /usr/bin/chromium (Debian package; never downloaded).
//
// The states, in order, each with a screenshot target/e2e/<nn>-<state>.png:
// the admin connects; creates an agent and a conversation (mode standard);
// a reply streams in; a tool call waits for approval; approved, its result
// and the final text show; another is denied and the denial shows; a slow
// turn is aborted; the page's connection is cut while a turn runs, and it
// resumes with the turn and no duplicate row; with the client token, the
// conversation is picked from the list and talked to. A state not reached
// fails the run naming it (FAILED-<state>.png). Every wait is bounded; the
// whole run is capped at DEADLINE_MS.

import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import {
  STEP_MS, Failure, check, freePort, kitProgram, lettaLauncher, poll, startBridge, startLettaRuntime, startModelServer,
  startProxy, stop, within,
} from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.argv[2] ? path.resolve(process.argv[2]) : path.join(ROOT, 'target', 'debug', 'letta-bridge');
const SHOTS = path.join(ROOT, 'target', 'e2e');
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
const DEADLINE_MS = 120_000;
/** A turn on the real runtime: its first answer can take a few seconds on a busy machine. */
const TURN_MS = 30_000;
const AGENT_NAME = 'e2e-agent';

const bash = (id, file, then) => ({
  tool_call: { id, name: 'Bash', arguments: { command: `touch ${file}`, description: `Create ${file}` } },
  then: { text: then },
});

const started = Date.now();
const log = (...a) => console.log(`[e2e +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

/** The child processes, for the watchdog. */
const running = [];

async function main() {
  let bridge, proxy, model, runtime, context, tmp, page;
  const pageErrors = [];
  const shots = [];
  let state = 'setup';
  /** Runs one state: `fn`, then its screenshot; a failure names the state. */
  const reach = async (n, name, fn) => {
    state = `${String(n).padStart(2, '0')}-${name}`;
    try {
      await fn();
    } catch (e) {
      throw new Failure(`state "${state}" not reached: ${e instanceof Failure ? e.message : e.stack || e}`);
    }
    const file = path.join(SHOTS, `${state}.png`);
    await page.screenshot({ path: file });
    shots.push(file);
    log(`reached ${state}`);
  };
  try {
    check(existsSync(BIN), `no bridge binary at ${BIN} (run \`cargo build\` first, or pass its path)`);
    const launcher = lettaLauncher(ROOT);
    await mkdir(SHOTS, { recursive: true });
    for (const f of await readdir(SHOTS)) if (f.endsWith('.png')) await rm(path.join(SHOTS, f));
    tmp = await mkdtemp(path.join(os.tmpdir(), 'letta-bridge-e2e-'));

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
      return (await fetch(`${http}/healthz`)).ok;
    }).catch((e) => { throw bridge.child.exitCode !== null ? new Failure(`the bridge exited with code ${bridge.child.exitCode}`) : e; });

    model = await startModelServer(kitProgram(ROOT, 'model-server', 'MODEL_SERVER'));
    running.push(model.child);
    log(`model server ${model.url}`);
    runtime = startLettaRuntime(launcher, { bridgeUrl: http, token: TOKENS.runtime, modelUrl: model.url, home: path.join(tmp, 'home') });
    running.push(runtime.child);
    const asClient = (token) => ({ Authorization: `Bearer ${token}` });
    const online = await poll(TURN_MS, 'the real runtime to come online (GET /runtimes)', async () => {
      if (runtime.child.exitCode !== null) throw new Failure(`the runtime exited with code ${runtime.child.exitCode}`);
      const list = await (await fetch(`${http}/runtimes`, { headers: asClient(TOKENS.client) })).json();
      return list.find((r) => r.online);
    });
    log(`runtime ${online.id} online (letta-code ${online.version})`);

    // The browser goes through a proxy (same origin for the page) so the
    // resume state can cut its connections.
    proxy = await startProxy(port);
    const pageUrl = `http://127.0.0.1:${proxy.port}/`;
    context = await within(STEP_MS * 2, 'Chromium launch', chromium.launchPersistentContext(path.join(tmp, 'chromium'), {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 820 },
    }));
    const eventUrls = [];
    const watch = (p) => {
      p.setDefaultTimeout(STEP_MS);
      p.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
      p.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
      p.on('request', (r) => { const u = new URL(r.url()); if (u.pathname === '/events') eventUrls.push(u); });
    };
    page = context.pages()[0] ?? await context.newPage();
    watch(page);
    const ui = consoleOf(page);

    await reach(1, 'admin-connected', async () => {
      await page.goto(pageUrl, { waitUntil: 'load' });
      await ui.connect(TOKENS.admin);
      await page.waitForSelector(`#runtimes li[data-runtime-id="${online.id}"][data-online="true"]`);
    });

    let scope;
    await reach(2, 'agent-created', async () => {
      await page.fill('#agent-name', AGENT_NAME);
      await page.selectOption('#agent-mode', 'standard');
      await page.getByRole('button', { name: 'Create agent' }).click();
      const selected = page.locator('#conversations button.conv[aria-pressed="true"]');
      await selected.waitFor({ timeout: TURN_MS });
      scope = await selected.evaluate((b) => ({ agent_id: b.dataset.agentId, conversation_id: b.dataset.conversationId }));
      check(/^agent-/.test(scope.agent_id), `the selected conversation's agent is ${JSON.stringify(scope.agent_id)}`);
      await expectText(page, '#conversations button.conv[aria-pressed="true"] .name', AGENT_NAME);
      await expectText(page, '#agent-status', null, /^Created an agent and a conversation/);
      // The runtime reports the mode the agent was created with.
      await page.waitForFunction(() => document.getElementById('mode').value === 'standard', null, { timeout: STEP_MS })
        .catch(async () => { throw new Failure(`the permission mode shows ${JSON.stringify(await page.inputValue('#mode'))}, want "standard"`); });
      await expectText(page, '#conv-state', 'idle');
    });

    await reach(3, 'reply-streamed', async () => {
      await model.plan([{ text: ['Hello', ' from', ' the', ' scripted', ' model.'], delay_ms: 150 }]);
      await recordBubbleTexts(page);
      await ui.send('hello from the browser');
      const chat = await model.chat('the first message', { ms: TURN_MS });
      check(chat.user.endsWith('hello from the browser'), `the model got ${JSON.stringify(chat.user.slice(-80))}`);
      await expectText(page, '#events .bubble.assistant', 'Hello from the scripted model.', null, TURN_MS);
      await expectTurns(page, ['end_turn']);
      const texts = await page.evaluate(() => window.e2eBubbleTexts);
      check(texts.length >= 3 && texts.every((t, i) => i === 0 || t.startsWith(texts[i - 1])),
        `the reply should grow piece by piece in one bubble; it went ${JSON.stringify(texts)}`);
      await expectText(page, '#status', null, new RegExp(`^Accepted: \\S+ → ${online.id}$`));
      // Every other event is a row whose JSON opens on a click.
      await page.locator('#events details[data-type="turn_finished"] summary').first().click();
      await expectText(page, '#events details[data-type="turn_finished"][open] pre', null, /"stop_reason": "end_turn"/);
    });

    await reach(4, 'approval-pending', async () => {
      await model.plan([bash('call_e2e_allow', 'approved.txt', ['Created', ' approved.txt.'])]);
      await ui.send('please create approved.txt');
      const card = page.locator('#events .tool[data-tool-call-id="call_e2e_allow"]');
      await card.getByRole('button', { name: 'Approve Bash' }).waitFor({ timeout: TURN_MS });
      await expectText(page, '#events .tool[data-tool-call-id="call_e2e_allow"] .tool-args', null, /touch approved\.txt/);
      await expectText(page, '#events .tool[data-tool-call-id="call_e2e_allow"] .tool-state', 'waiting for approval');
      await expectText(page, '#conv-state', 'needs approval');
      check(await card.getByRole('button', { name: 'Deny Bash' }).isEnabled(), 'the Deny button is enabled');
      check(!existsSync(path.join(runtime.home, 'approved.txt')), 'nothing ran before the approval');
    });

    await reach(5, 'approved-tool-result', async () => {
      const card = page.locator('#events .tool[data-tool-call-id="call_e2e_allow"]');
      await card.getByRole('button', { name: 'Approve Bash' }).click();
      await expectText(page, '#events .tool[data-tool-call-id="call_e2e_allow"] .outcome', 'Approved');
      await page.waitForSelector('#events .tool[data-tool-call-id="call_e2e_allow"][data-state="success"]', { timeout: TURN_MS });
      await expectText(page, '#events .tool[data-tool-call-id="call_e2e_allow"] .tool-result .label', 'Result');
      await expectText(page, '#events .bubble.assistant', 'Created approved.txt.', null, TURN_MS);
      await expectTurns(page, ['end_turn', 'end_turn']);
      check(existsSync(path.join(runtime.home, 'approved.txt')), 'the approved command ran in the runtime\'s folder');
      check(await card.getByRole('button', { name: 'Approve Bash' }).isHidden(), 'the buttons go once the approval is answered');
    });

    await reach(6, 'denied', async () => {
      await model.plan([bash('call_e2e_deny', 'denied.txt', ['Understood,', ' I left it alone.'])]);
      await ui.send('please create denied.txt');
      const card = page.locator('#events .tool[data-tool-call-id="call_e2e_deny"]');
      await card.getByRole('button', { name: 'Deny Bash' }).waitFor({ timeout: TURN_MS });
      await card.getByLabel('Reason for denying Bash').fill('Not in this test.');
      await card.getByRole('button', { name: 'Deny Bash' }).click();
      await expectText(page, '#events .tool[data-tool-call-id="call_e2e_deny"] .outcome', 'Denied: Not in this test.');
      await page.waitForSelector('#events .tool[data-tool-call-id="call_e2e_deny"][data-state="error"]', { timeout: TURN_MS });
      await expectText(page, '#events .tool[data-tool-call-id="call_e2e_deny"] .tool-result .label', 'Denied');
      await expectText(page, '#events .tool[data-tool-call-id="call_e2e_deny"] .tool-return', 'Not in this test.');
      await expectText(page, '#events .bubble.assistant', 'Understood, I left it alone.', null, TURN_MS);
      await expectTurns(page, ['end_turn', 'end_turn', 'end_turn']);
      check(!existsSync(path.join(runtime.home, 'denied.txt')), 'the denied command did not run');
    });

    await reach(7, 'aborted', async () => {
      await model.plan([{ text: Array(60).fill('slow '), delay_ms: 200 }]);
      await ui.send('take your time');
      await expectText(page, '#events .bubble.assistant', null, /^slow slow /, TURN_MS);
      await page.getByRole('button', { name: 'Abort' }).click();
      await expectText(page, '#status', 'Aborted the running turn.');
      await expectText(page, '#events .notice', 'Interrupted');
      await expectTurns(page, ['end_turn', 'end_turn', 'end_turn', 'cancelled']);
      await expectText(page, '#conv-state', 'idle');
    });

    // Cut the page's connections, run a turn meanwhile (straight to the
    // bridge), and expect the console to come back with a new ticket from
    // where it was: the turn shown once, no row twice.
    const before = await lastEventId(page);
    const errorsBefore = pageErrors.length;
    await reach(8, 'connection-cut', async () => {
      proxy.drop();
      await page.waitForSelector('#stream-state[data-state="reconnecting"]');
    });
    await reach(9, 'resumed-no-duplicates', async () => {
      await model.plan([{ text: ['Resumed', ' after', ' a drop.'] }]);
      const res = await fetch(`${http}/input?wait=completion&timeout_ms=${TURN_MS}`, {
        method: 'POST', headers: { ...asClient(TOKENS.client), 'Content-Type': 'application/json' },
        body: JSON.stringify({ runtime: scope, payload: { kind: 'create_message', messages: [{ role: 'user', content: 'while you were away' }] } }),
      });
      const turn = await res.json();
      check(res.ok && turn.text === 'Resumed after a drop.', `the turn while the page was away: ${res.status} ${JSON.stringify(turn)}`);
      proxy.release();
      await page.waitForSelector('#stream-state[data-state="live"]');
      await expectText(page, '#events .bubble.assistant', 'Resumed after a drop.');
      await expectTurns(page, ['end_turn', 'end_turn', 'end_turn', 'cancelled', 'end_turn']);
      const resumed = await page.locator('#events .bubble.assistant', { hasText: 'Resumed after a drop.' }).count();
      check(resumed === 1, `the turn's reply should show once, found ${resumed} bubbles`);
      // One event may show as a bubble or card and a notice, but as one event row at most.
      const dupes = await page.$$eval('#events details.event[data-event-id]', (rows) => {
        const seen = new Set();
        return rows.map((r) => `${r.dataset.eventId} (${r.dataset.type})`).filter((id) => seen.has(id) || !seen.add(id));
      });
      check(dupes.length === 0, `rows shown twice after the resume: ${dupes.join(', ')}`);
      check(eventUrls.length >= 2, `expected a second GET /events, saw ${eventUrls.length}`);
      const again = eventUrls.at(-1);
      const from = again.searchParams.get('last_event_id');
      check(from && seqOf(from) >= seqOf(before), `the reconnect resumed from ${from}, before the last event shown (${before})`);
      check(again.searchParams.get('ticket') !== eventUrls.at(-2).searchParams.get('ticket'), 'the reconnect reused a ticket');
      for (const u of eventUrls) check(!u.search.includes(TOKENS.client) && !u.search.includes(TOKENS.admin), 'a token appeared in an /events URL');
      // Chromium itself logs the cut stream; the page cannot prevent that.
      const dropNoise = /^console: Failed to load resource: net::ERR_(INCOMPLETE_CHUNKED_ENCODING|CONNECTION_RESET|EMPTY_RESPONSE)/;
      pageErrors.splice(errorsBefore, Infinity, ...pageErrors.slice(errorsBefore).filter((e) => !dropNoise.test(e)));
    });

    // The client token: no agent creation; the conversation comes from the list.
    page = await context.newPage();
    watch(page);
    const client = consoleOf(page);
    const convButton = `#conversations button.conv[data-agent-id="${scope.agent_id}"][data-conversation-id="${scope.conversation_id}"]`;
    await reach(10, 'client-conversation-list', async () => {
      await page.goto(pageUrl, { waitUntil: 'load' });
      await client.connect(TOKENS.client);
      await page.waitForSelector(convButton);
      await expectText(page, `${convButton} .name`, AGENT_NAME);
      const errorsBeforeCreate = pageErrors.length;
      await page.getByRole('button', { name: 'Create agent' }).click();
      await expectText(page, '#agent-status', null, /^Not created \(403\):.*admin token/);
      const forbidden = /^console: Failed to load resource: the server responded with a status of 403/;
      pageErrors.splice(errorsBeforeCreate, Infinity, ...pageErrors.slice(errorsBeforeCreate).filter((e) => !forbidden.test(e)));
    });
    await reach(11, 'client-reply', async () => {
      await page.locator(convButton).click();
      await page.waitForSelector(`${convButton}[aria-pressed="true"]`);
      // Picking it syncs its state: the mode and the loop status come back.
      await page.waitForFunction(() => document.getElementById('mode').value === 'standard', null, { timeout: STEP_MS });
      await expectText(page, '#conv-state', 'idle');
      // The history the bridge still holds is shown too.
      await expectText(page, '#events .bubble.assistant', 'Hello from the scripted model.');
      await model.plan([{ text: ['Hello,', ' client.'] }]);
      await client.send('hello from the client token');
      await expectText(page, '#events .bubble.assistant', 'Hello, client.', null, TURN_MS);
      await expectTurns(page, ['end_turn', 'end_turn', 'end_turn', 'cancelled', 'end_turn', 'end_turn']);
      await expectText(page, '#conv-state', 'idle');
    });

    check(pageErrors.length === 0, `the page logged errors:\n  ${pageErrors.join('\n  ')}`);
    log(`screenshots:\n  ${shots.map((f) => path.relative(ROOT, f)).join('\n  ')}`);
    log(`PASS in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    console.error(`\nFAIL: ${e instanceof Failure ? e.message : e.stack || e}`);
    if (page) {
      const file = path.join(SHOTS, `FAILED-${state}.png`);
      await within(5_000, 'failure screenshot', page.screenshot({ path: file })).then(() => console.error(`screenshot: ${file}`), () => {});
    }
    if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
    if (bridge) console.error(`--- bridge output (last lines) ---\n${tail(bridge.output.join(''), 40)}`);
    if (model) console.error(`--- model-server output (last lines) ---\n${tail(model.output.join(''), 20)}`);
    if (runtime) console.error(`--- runtime log (last lines) ---\n${tail(runtime.log(), 60)}`);
    process.exitCode = 1;
  } finally {
    if (context) await within(5_000, 'browser close', context.close()).catch((e) => console.error(e.message));
    proxy?.close();
    await stop(runtime);
    await model?.close();
    await stop(bridge);
    if (tmp && !process.exitCode) await rm(tmp, { recursive: true, force: true }).catch(() => {});
    else if (tmp) console.error(`kept for diagnosis: ${tmp}`);
  }
}

/** What a user does on the page, by the controls' accessible names. */
function consoleOf(page) {
  return {
    async connect(token) {
      await page.getByLabel('Token (client or admin)').fill(token);
      await page.getByRole('button', { name: 'Connect' }).click();
      await page.waitForSelector('#stream-state[data-state="live"]');
    },
    async send(text) {
      await page.getByLabel('Message', { exact: true }).fill(text);
      await page.getByRole('button', { name: 'Send' }).click();
    },
  };
}

/** Records each text the newest assistant bubble shows, as it grows. */
async function recordBubbleTexts(page) {
  await page.evaluate(() => {
    window.e2eBubbleTexts = [];
    const before = document.querySelectorAll('#events .bubble.assistant').length;
    new MutationObserver(() => {
      const all = document.querySelectorAll('#events .bubble.assistant');
      if (all.length <= before) return;
      const text = all[all.length - 1].textContent;
      if (window.e2eBubbleTexts.at(-1) !== text) window.e2eBubbleTexts.push(text);
    }).observe(document.getElementById('events'), { subtree: true, childList: true, characterData: true });
  });
}

/** Waits until the turn_finished rows show exactly these stop reasons, in order. */
async function expectTurns(page, reasons) {
  const sel = '#events details[data-type="turn_finished"] .stop-reason';
  try {
    await page.waitForFunction(([s, want]) => JSON.stringify([...document.querySelectorAll(s)].map((e) => e.textContent)) === want,
      [sel, JSON.stringify(reasons)], { timeout: TURN_MS });
  } catch {
    const seen = await page.$$eval(sel, (es) => es.map((e) => e.textContent)).catch(() => []);
    throw new Failure(`turn_finished rows: want ${JSON.stringify(reasons)}, found ${JSON.stringify(seen)}`);
  }
}

/** The newest event id among the rows. */
async function lastEventId(page) {
  const ids = await page.$$eval('#events [data-event-id]', (rows) => rows.map((r) => r.dataset.eventId));
  return ids.sort((a, b) => seqOf(a) - seqOf(b)).at(-1) ?? '';
}
function seqOf(id) { return Number(String(id).split('-').pop()); }

/** Waits until some element matching `selector` has exactly `text` (or text matching `re`). */
async function expectText(page, selector, text, re = null, ms = STEP_MS) {
  try {
    await page.waitForFunction(([sel, want, src]) => [...document.querySelectorAll(sel)]
      .some((e) => (src ? new RegExp(src).test(e.textContent) : e.textContent === want)),
    [selector, text, re?.source ?? null], { timeout: ms });
  } catch {
    const seen = await page.$$eval(selector, (es) => es.map((e) => e.textContent)).catch(() => []);
    throw new Failure(`no ${selector} with text ${re ?? JSON.stringify(text)}; found ${JSON.stringify(seen.slice(-8))}`);
  }
}

/** The last `n` lines of `text`, each cut at 300 characters (the runtime logs whole frames). */
function tail(text, n) { return text.split('\n').slice(-n).map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l)).join('\n'); }

const watchdog = setTimeout(() => {
  console.error(`FAIL: overall deadline of ${DEADLINE_MS / 1000} s exceeded`);
  for (const child of running) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
  }
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();
await main();
clearTimeout(watchdog);
