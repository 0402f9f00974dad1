// One scenario of Letta's own clients against the bridge:
//   node run.mjs <scenario> ['<json arguments>']
// Prints one JSON line per step ({"step": ...}); on failure {"step":"failed",
// "error": ...} and exit code 1. The live test (tests/live/clients.rs) runs
// it with LETTA_BRIDGE_URL, the tokens and APP_SERVER_CLIENT_JS set, and
// judges the lines; the scenarios only drive the clients and report.

import {
  appServerUrl,
  assistantText,
  bridge,
  inScope,
  lettaClient,
  openClient,
  relayUrl,
  report,
  seen,
  turn,
} from './clients.mjs';
import { userScenarios } from './users.mjs';

/** The agent `runtime_start` creates: the model server's `fake-model`. */
const CREATE_AGENT = {
  create_agent: {
    body: { name: 'client-test', model: 'lmstudio/fake-model', system: 'You are a test agent.' },
    memfs: false,
    pin_global: false,
  },
  create_conversation: {},
};

/** The online environment the runtime is, found as Letta's clients find it. */
async function onlineEnvironment() {
  const { connections } = await lettaClient().environments.list({ onlineOnly: 'true' });
  if (connections.length !== 1) throw new Error(`expected one online environment: ${JSON.stringify(connections)}`);
  return connections[0];
}

const scenarios = {
  /** letta-client's REST calls: list (all, online only), retrieve, an unknown device. */
  async environments() {
    const letta = lettaClient();
    report('list', await letta.environments.list());
    const online = await letta.environments.list({ onlineOnly: 'true', limit: '10' });
    report('list_online', online);
    const [first] = online.connections;
    report('retrieve', await letta.environments.retrieve(first.deviceId));
    try {
      await letta.environments.retrieve('no-such-device');
      report('retrieve_unknown', { status: 200 });
    } catch (e) {
      report('retrieve_unknown', { status: e.status ?? null, error: e.error ?? null });
    }
  },

  /**
   * AppServerClient on the relay path with the admin token creates an agent
   * and runs a turn; a second one on /app-server/ws with the client token
   * resumes that conversation and runs a turn; both answer pings.
   */
  async create_and_resume() {
    const env = await onlineEnvironment();
    report('environment', env);
    const first = await openClient('relay', relayUrl(env.connectionId), bridge.adminToken);
    report('info', await first.client.info());
    const started = await first.client.runtimeStart(CREATE_AGENT);
    report('runtime_start', started);
    const scope = started.runtime;
    const one = await turn(first, scope, 'hi');
    report('turn', { ...one, text: assistantText(first.frames, one.finished.run_id) });
    const synced = await first.client.sync({ runtime: scope, recover_approvals: true, force_device_status: true });
    report('sync', synced);

    const second = await openClient('app_server', appServerUrl(), bridge.clientToken);
    const resumed = await second.client.runtimeStart({
      agent_id: scope.agent_id,
      conversation_id: scope.conversation_id,
      recover_approvals: false,
      force_device_status: true,
      client_info: { name: 'letta-bridge-live-test', title: 'letta-bridge live test' },
    });
    report('resume', resumed);
    // The first client sees the second one's turn too (the same feed).
    const seenByFirst = first.next('the second turn on the first socket', inScope('turn_finished', scope));
    const two = await turn(second, scope, 'hi again');
    report('resumed_turn', { ...two, text: assistantText(second.frames, two.finished.run_id) });
    await seenByFirst;

    // Relay bookkeeping: a ping gets a pong on either socket and goes no further.
    for (const observed of [first, second]) {
      const pong = observed.next('pong', (f) => f.type === 'pong');
      observed.client.sendRaw({ type: 'ping' });
      report('pong', { socket: observed.name, pong: await pong });
    }
    report('relay_seen', seen(first));
    report('app_server_seen', seen(second));
    first.client.close();
    second.client.close();
  },

  /** A client token may not create an agent: the refusal is the reply the client waits for. */
  async create_refused() {
    const env = await onlineEnvironment();
    const relay = await openClient('relay', relayUrl(env.connectionId), bridge.clientToken);
    report('runtime_start', await relay.client.runtimeStart(CREATE_AGENT));
    const appServer = await openClient('app_server', appServerUrl(), bridge.clientToken);
    report('runtime_start_app_server', await appServer.client.runtimeStart({ ...CREATE_AGENT }));
    report('relay_seen', seen(relay));
    relay.client.close();
    appServer.client.close();
  },

  /**
   * Two fresh clients number their requests alike (`app-server-info-1`,
   * `sync-2`, `input-3`): each gets its own replies, once.
   */
  async colliding_ids({ scopes }) {
    const env = await onlineEnvironment();
    const clients = [
      await openClient('relay', relayUrl(env.connectionId), bridge.clientToken),
      await openClient('app_server', appServerUrl(), bridge.clientToken),
    ];
    const infos = await Promise.all(clients.map((c) => c.client.info()));
    report('infos', { request_ids: infos.map((i) => i.request_id) });
    const syncs = await Promise.all(clients.map((c, i) => c.client.sync({ runtime: scopes[i] })));
    report('syncs', { replies: syncs });
    const turns = await Promise.all(clients.map((c, i) => turn(c, scopes[i], `hi from ${c.name}`)));
    report('turns', { replies: turns.map((t) => t.accepted) });
    // Let anything misrouted arrive before judging.
    await new Promise((r) => setTimeout(r, 300));
    for (const c of clients) report('seen', { socket: c.name, ...seen(c) });
    for (const c of clients) c.client.close();
  },

  /** letta-client's sendMessage starts a turn, watched on a relay socket authorised by ?token=. */
  async send_message({ scope }) {
    const env = await onlineEnvironment();
    const url = relayUrl(env.connectionId, {
      agentId: scope.agent_id,
      conversationId: scope.conversation_id,
      query: { channel: 'stream', token: bridge.clientToken },
    });
    const watcher = await openClient('relay', url, undefined);
    const finished = watcher.next('turn_finished', inScope('turn_finished', scope));
    const sent = await lettaClient().environments.sendMessage(env.connectionId, {
      messages: [{ role: 'user', content: 'hi by REST', client_message_id: 'cm-live-1' }],
      agentId: scope.agent_id,
      conversationId: scope.conversation_id,
    });
    report('sent', sent);
    const done = await finished;
    report('turn', { finished: done, text: assistantText(watcher.frames, done.run_id) });
    report('relay_seen', seen(watcher));
    watcher.client.close();
  },

  /** Both kinds of socket open, then wait for the bridge to close them. */
  async held_open() {
    const env = await onlineEnvironment();
    const sockets = [
      await openClient('relay', relayUrl(env.connectionId), bridge.clientToken),
      await openClient('app_server', appServerUrl(), bridge.clientToken),
    ];
    report('open');
    for (const s of sockets) report('closed', { socket: s.name, ...(await s.closedSocket()) });
  },
};

const known = { ...scenarios, ...userScenarios };
const [name, args] = process.argv.slice(2);
const scenario = known[name];
if (!scenario) {
  report('failed', { error: `no scenario ${name}; known: ${Object.keys(known).join(', ')}` });
  process.exit(2);
}
let code = 0;
try {
  await scenario(args ? JSON.parse(args) : {});
  report('done');
} catch (e) {
  report('failed', { error: String(e?.stack ?? e) });
  code = 1;
}
// Exit once stdout has taken every line (process.exit alone may drop the
// tail of a long one); the clients' keep-alive handles would hold it open.
process.stdout.write('', () => process.exit(code));
