// The scenarios of Letta's own clients holding end users' tokens (issue 21),
// merged into run.mjs's: `@letta-ai/letta-client` and `AppServerClient`
// given a user token (minted by the live test, tests/live/users.rs) where
// they would take the Letta API key. Each user arrives as
// {name, token, device, scope}: the token's one grant is every action on
// `scope` (its agent and conversation) on the runtime `device`. The
// scenarios only drive the clients and report what they answered or threw;
// the live test judges.

import { appServerUrl, assistantText, bridge, lettaClient, inScope, openClient, relayUrl, report, seen, turn } from './clients.mjs';

/** What `call` answered, or the status and error it threw (as the client surfaces a refusal). */
async function outcome(call) {
  try {
    return { ok: true, value: await call() };
  } catch (e) {
    return { ok: false, status: e.status ?? null, error: e.error ?? String(e.message ?? e) };
  }
}

/** The connection id of runtime `device`, as the client token lists it (it sees every runtime). */
async function connectionOf(device) {
  const { connections } = await lettaClient().environments.list();
  const found = connections.find((c) => c.deviceId === device);
  if (!found) throw new Error(`no environment ${device}: ${JSON.stringify(connections)}`);
  return found.connectionId;
}

/** `letta-client`'s `sendMessage` with `token` to runtime `device`'s connection, into `scope`. */
async function sendMessage(token, device, scope, text) {
  const connection = await connectionOf(device);
  return outcome(() =>
    lettaClient(token).environments.sendMessage(connection, {
      messages: [{ role: 'user', content: text }],
      agentId: scope.agent_id,
      conversationId: scope.conversation_id,
    }),
  );
}

/** Opens an `AppServerClient` on `url` with `token`: the client, or what `connect()` threw. */
async function tryOpen(name, url, token) {
  return outcome(() => openClient(name, url, token));
}

export const userScenarios = {
  /**
   * letta-client with each user's token: list (all, online only), retrieve
   * their runtime and the other's, send into the other runtime and into a
   * conversation of their own runtime that is not theirs.
   */
  async user_environments({ users, foreign }) {
    for (const user of users) {
      const letta = lettaClient(user.token);
      const other = users.find((u) => u !== user);
      const who = { user: user.name };
      report('list', { ...who, ...(await letta.environments.list()) });
      report('list_online', { ...who, ...(await letta.environments.list({ onlineOnly: 'true' })) });
      report('retrieve_own', { ...who, ...(await outcome(() => letta.environments.retrieve(user.device))) });
      report('retrieve_other', { ...who, ...(await outcome(() => letta.environments.retrieve(other.device))) });
      report('send_other_runtime', { ...who, ...(await sendMessage(user.token, other.device, user.scope, 'hi')) });
      const notTheirs = foreign[user.name];
      report('send_foreign_conversation', { ...who, ...(await sendMessage(user.token, user.device, notTheirs, 'hi')) });
    }
  },

  /**
   * Alice's AppServerClient on /app-server/ws: unnamed (two runtimes online),
   * on Bob's runtime, on her own. On hers she resumes and runs a turn in
   * her conversation after a client-token watcher ran one in `other` (a
   * conversation of another agent on her runtime); her commands for
   * `other` are refused. Her relay socket to Bob's runtime is refused too.
   * (The hub orders both turns: by her own turn's end, her socket has
   * passed every event of the other one.)
   */
  async user_app_server({ alice, bob, other }) {
    const unnamed = await openClient('alice_unnamed', appServerUrl(), alice.token);
    const closed = await unnamed.closedSocket();
    report('unnamed', { closed, frames: unnamed.frames });

    const onBob = await tryOpen('alice_on_bob', appServerUrl(`?runtime=${bob.device}`), alice.token);
    report('app_server_other_runtime', { ok: onBob.ok, error: onBob.error });
    const relayOnBob = await tryOpen('alice_relay_on_bob', relayUrl(await connectionOf(bob.device)), alice.token);
    report('relay_other_runtime', { ok: relayOnBob.ok, error: relayOnBob.error });

    const mine = await openClient('alice', appServerUrl(`?runtime=${alice.device}`), alice.token);
    report('info', await mine.client.info());
    report('resume', await mine.client.runtimeStart({ ...alice.scope, force_device_status: true }));
    const notHers = { kind: 'create_message', messages: [{ role: 'user', content: 'not hers' }] };
    const refused = [
      await mine.client.runtimeStart({ request_id: 'alice-refused-resume', ...other }),
      await mine.client.submitInput({ request_id: 'alice-refused-input', runtime: other, payload: notHers }),
      await mine.client.sync({ request_id: 'alice-refused-sync', runtime: other }),
      await mine.client.abort({ request_id: 'alice-refused-abort', runtime: other }),
      await mine.client.conversationList({ request_id: 'alice-refused-list' }),
    ];
    report('refused', { replies: refused });

    // Someone else's turn on her runtime, finished before hers starts.
    const watcher = await openClient('watcher', appServerUrl(`?runtime=${alice.device}`), bridge.clientToken);
    const others = await turn(watcher, other, 'hi from someone else');
    report('other_turn', { ...others, text: assistantText(watcher.frames, others.finished.run_id) });
    const hers = await turn(mine, alice.scope, 'hi from alice');
    report('alice_turn', { ...hers, text: assistantText(mine.frames, hers.finished.run_id) });

    report('alice_seen', seen(mine));
    for (const c of [mine, watcher]) c.client.close();
  },

  /**
   * Bob on the relay socket with his token in `?token=` (as a browser
   * would): a client-token watcher runs a turn in `other` (another
   * conversation on his runtime), then letta-client's sendMessage with his
   * token starts a turn in his conversation that the socket streams; his
   * input for `other` is refused; the same socket on Alice's runtime is
   * refused, by `?token=` and by header, and so is his App-Server socket there.
   */
  async user_relay({ alice, bob, other }) {
    const url = relayUrl(await connectionOf(bob.device), {
      agentId: bob.scope.agent_id,
      conversationId: bob.scope.conversation_id,
      query: { token: bob.token },
    });
    const relay = await openClient('bob', url, undefined);
    const watcher = await openClient('watcher', appServerUrl(`?runtime=${bob.device}`), bridge.clientToken);
    const others = await turn(watcher, other, 'hi from someone else');
    report('other_turn', { ...others, text: assistantText(watcher.frames, others.finished.run_id) });

    const finished = relay.next('turn_finished', inScope('turn_finished', bob.scope));
    report('sent', await sendMessage(bob.token, bob.device, bob.scope, 'hi from bob'));
    const done = await finished;
    report('bob_turn', { finished: done, text: assistantText(relay.frames, done.run_id) });
    report('sync', await relay.client.sync({ request_id: 'bob-sync', runtime: bob.scope }));
    const notHis = { kind: 'create_message', messages: [{ role: 'user', content: 'not his' }] };
    report('refused', await relay.client.submitInput({ request_id: 'bob-refused-input', runtime: other, payload: notHis }));

    const aliceConnection = await connectionOf(alice.device);
    const byQuery = relayUrl(aliceConnection, { query: { token: bob.token } });
    const onAlice = [
      await tryOpen('bob_relay_on_alice', byQuery, undefined),
      await tryOpen('bob_relay_header_on_alice', relayUrl(aliceConnection), bob.token),
      await tryOpen('bob_app_server_on_alice', appServerUrl(`?runtime=${alice.device}`), bob.token),
    ];
    report('other_runtime', { outcomes: onAlice.map(({ ok, error }) => ({ ok, error })) });
    report('bob_seen', seen(relay));
    for (const c of [relay, watcher]) c.client.close();
  },
};
