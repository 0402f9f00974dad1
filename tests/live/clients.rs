//! Letta's own clients, the unmodified published packages, with the bridge
//! as their router: `@letta-ai/letta-client` (REST), `AppServerClient` from
//! `@letta-ai/letta-code` on the relay socket and on `/app-server/ws`, and
//! `letta computers list`. The scenarios are in `tests/clients/run.mjs`;
//! what the runtime itself received comes from its `--debug` log, which
//! prints every frame it reads (`← recv`), unparseable ones included.

use letta_bridge_testkit::bridge::CLIENT_TOKEN;
use letta_bridge_testkit::letta::{LETTA_CODE_VERSION, LettaRuntime};
use serde_json::{Value, json};

use crate::harness::{Live, greeting};
use crate::node::{self, Scenario, Steps};

/// Starts the live setup for a client test, or `None` when it is skipped.
async fn start(test: &str) -> Option<Live> {
    if !node::packages_or_skip(test) {
        return None;
    }
    Live::start(test).await
}

/// Every frame `runtime` read, from its `--debug` log (`← recv …  {json}`).
pub fn runtime_received(runtime: &LettaRuntime) -> Vec<Value> {
    runtime
        .log()
        .lines()
        .filter_map(|line| line.split_once("← recv")?.1.split_once('{').map(|(_, rest)| format!("{{{rest}")))
        .map(|json| serde_json::from_str(&json).unwrap_or_else(|e| panic!("a logged frame parses ({e}): {json}")))
        .collect()
}

/// The runtime read no relay bookkeeping: no `ack`, no `ping`, nothing it
/// could not parse (it logs those as `_ws_unparseable`). Returns the
/// commands it read.
fn assert_no_bookkeeping_reached_the_runtime(live: &Live) -> Vec<Value> {
    let received = runtime_received(&live.runtime);
    for frame in &received {
        let kind = frame["type"].as_str().unwrap_or_default();
        assert!(!matches!(kind, "ack" | "ping" | "_ws_unparseable"), "the runtime read {frame}");
    }
    received.into_iter().filter(|f| !matches!(f["type"].as_str(), Some("pong" | "_ws_open"))).collect()
}

/// The value of series `series` (name and labels) in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// The `request_id`s of the replies among `frames`, in order.
fn reply_ids(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .filter(|f| f["type"] == "input_accepted" || f["type"].as_str().is_some_and(|t| t.ends_with("_response")))
        .filter_map(|f| f["request_id"].as_str())
        .collect()
}

/// Every frame but `pong` (bookkeeping) carries `seq` 1, 2, 3… and every
/// one was acked, in order.
fn assert_every_seq_numbered_and_acked(seen: &Value) {
    let frames: Vec<&Value> = seen["frames"].as_array().unwrap().iter().filter(|f| f["type"] != "pong").collect();
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {f}"))).collect();
    let expected: Vec<u64> = (1..=frames.len() as u64).collect();
    assert_eq!(seqs, expected, "one seq per frame, from 1, without gaps");
    let acked: Vec<u64> = seen["acked"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
    assert_eq!(acked, expected, "the client acked every seq");
}

#[tokio::test]
async fn letta_client_lists_and_retrieves_the_runtime_as_an_online_environment() {
    let Some(live) = start("env_list").await else { return };
    let steps = node::run(&live, "environments", &json!({})).await;

    for name in ["list", "list_online"] {
        let list = steps.get(name);
        assert_eq!(list["hasNextPage"], false, "{list}");
        let connections = list["connections"].as_array().unwrap();
        assert_eq!(connections.len(), 1, "{list}");
        let env = &connections[0];
        assert_eq!((env["deviceId"].as_str(), env["id"].as_str()), (Some(&*live.runtime_id), Some(&*live.runtime_id)));
        assert!(env["connectionId"].as_str().is_some_and(|c| c.starts_with("conn-")), "registered: {env}");
        assert_eq!(env["connectionName"], "live-test", "{env}");
        assert_eq!(env["metadata"]["lettaCodeVersion"], LETTA_CODE_VERSION, "{env}");
        assert_eq!(env["organizationId"], "local", "{env}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let heartbeat = env["lastHeartbeat"].as_u64().expect("a heartbeat");
        assert!(now.abs_diff(heartbeat) < 120_000, "fresh, as letta-code's isOnline needs: {env}");
    }
    let retrieved = steps.get("retrieve");
    assert_eq!(retrieved["deviceId"], live.runtime_id.as_str(), "{retrieved}");
    assert_eq!(retrieved["connectionId"], steps.get("list")["connections"][0]["connectionId"]);
    assert_eq!(steps.get("retrieve_unknown")["status"], 404);
}

#[tokio::test]
async fn letta_computers_list_pointed_at_the_bridge_lists_the_runtime_as_online() {
    let Some(live) = start("computers_list").await else { return };
    for args in [&["computers", "list"][..], &["computers", "list", "--online-only"]] {
        let out = node::letta_cli(&live, CLIENT_TOKEN, args).await;
        let json = &out[out.find('{').unwrap_or_else(|| panic!("JSON output: {out}"))..];
        let listed: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {out}"));
        let computers = listed["connections"].as_array().unwrap();
        assert_eq!(computers.len(), 1, "{listed}");
        let computer = &computers[0];
        assert_eq!(computer["deviceId"], live.runtime_id.as_str(), "{listed}");
        assert_eq!(computer["connectionName"], "live-test", "{listed}");
        assert_eq!(computer["lettaCodeVersion"], LETTA_CODE_VERSION, "{listed}");
        assert!(computer["connectionId"].as_str().is_some_and(|c| c.starts_with("conn-")), "{listed}");
        if args.len() == 2 {
            assert_eq!(computer["isOnline"], true, "the CLI's own online test: {listed}");
        }
    }
}

#[tokio::test]
async fn app_server_client_creates_an_agent_on_the_relay_path_and_a_second_client_resumes_it_on_app_server_ws() {
    let Some(mut live) = start("create_and_resume").await else { return };
    let steps = node::run(&live, "create_and_resume", &json!({})).await;

    let env = steps.get("environment");
    assert_eq!(env["deviceId"], live.runtime_id.as_str(), "{env}");
    let info = steps.get("info");
    assert_eq!(info["type"], "app_server_info_response", "{info}");
    assert_eq!(info["request_id"], "app-server-info-1", "the client's own id, not the bridge's namespace: {info}");
    assert_eq!(
        (info["backend"].as_str(), info["letta_code_version"].as_str()),
        (Some("local"), Some(LETTA_CODE_VERSION))
    );
    assert_eq!(info["protocol_version"], 1, "{info}");

    // The admin token creates an agent through the relay socket.
    let started = steps.get("runtime_start");
    assert_eq!((started["type"].as_str(), started["success"].as_bool()), (Some("runtime_start_response"), Some(true)));
    let scope = started["runtime"].clone();
    assert!(scope["agent_id"].as_str().is_some_and(|a| a.starts_with("agent-")), "{started}");
    let first = steps.get("turn");
    assert_eq!(
        (first["accepted"]["accepted"].as_bool(), first["accepted"]["request_id"].as_str()),
        (Some(true), Some("input-3"))
    );
    assert_eq!(first["finished"]["stop_reason"], "end_turn", "{first}");
    assert_eq!(first["text"], greeting().text());
    assert_eq!(steps.get("sync")["success"], true, "{}", steps.get("sync"));

    // The client token resumes it on /app-server/ws and runs a turn there.
    let resumed = steps.get("resume");
    assert_eq!(
        (resumed["success"].as_bool(), resumed["request_id"].as_str()),
        (Some(true), Some("runtime-start-1")),
        "{resumed}"
    );
    assert_eq!(resumed["runtime"], scope, "{resumed}");
    let second = steps.get("resumed_turn");
    assert_eq!(second["finished"]["stop_reason"], "end_turn", "{second}");
    assert_eq!(second["text"], greeting().text());
    let chats = live.model.chat_requests();
    assert_eq!(chats.len(), 2, "two turns, two model calls");
    assert!(chats[1].body["messages"].to_string().contains("hi again"), "the resumed conversation's message");

    // Relay socket: every frame numbered and acked; replies only its own.
    let relay = steps.get("relay_seen");
    assert_every_seq_numbered_and_acked(relay);
    let relay_frames = relay["frames"].as_array().unwrap();
    assert_eq!(reply_ids(relay_frames), ["app-server-info-1", "runtime-start-2", "input-3", "sync-4"]);
    let app_server = steps.get("app_server_seen");
    let app_frames = app_server["frames"].as_array().unwrap();
    assert!(app_frames.iter().all(|f| f.get("seq").is_none()), "App-Server sockets carry no seq");
    assert_eq!(reply_ids(app_frames), ["runtime-start-1", "input-2"]);
    for pong in steps.all("pong") {
        assert_eq!(pong["pong"]["type"], "pong", "{pong}");
    }

    // The relay socket saw the runtime's events as GET /events did, in the same order.
    let last = relay_frames.iter().rev().find_map(|f| f["event_seq"].as_u64()).unwrap();
    live.events.next_matching("the relay socket's last event", |e| e.data["event_seq"] == last).await;
    let events_of = |frames: &mut dyn Iterator<Item = &Value>| -> Vec<u64> {
        frames
            .filter(|f| reply_ids(std::slice::from_ref(f)).is_empty())
            .filter_map(|f| f["event_seq"].as_u64())
            .collect()
    };
    let on_socket = events_of(&mut relay_frames.iter());
    let from = on_socket[0];
    let on_stream = events_of(
        &mut live.events.seen.iter().map(|e| &e.data).filter(|d| d["event_seq"].as_u64().is_some_and(|s| s >= from)),
    );
    assert_eq!(on_socket, on_stream, "the same events in the same order as GET /events");

    // The runtime got the commands under each socket's namespace, and no ack or ping.
    let commands = assert_no_bookkeeping_reached_the_runtime(&live);
    let ids: Vec<&str> =
        commands.iter().filter_map(|c| c["request_id"].as_str()).filter(|id| id.starts_with('c')).collect();
    assert_eq!(ids.len(), 6, "four commands of the first client, two of the second: {ids:?}");
    assert!(ids.iter().all(|id| id.len() > 34 && id.as_bytes()[33] == b':'), "namespaced: {ids:?}");

    // Counted in /metrics: both kinds of socket, frames both ways.
    let metrics = live.bridge.http.get(live.bridge.url("/metrics")).bearer_auth(CLIENT_TOKEN).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for kind in ["relay", "app_server"] {
        for name in ["letta_bridge_client_frames_in_total", "letta_bridge_client_frames_out_total"] {
            let count = metric(&metrics, &format!("{name}{{kind=\"{kind}\"}}"));
            assert!(count.is_some_and(|c| c > 0.0), "{name} of {kind} sockets counted: {metrics}");
        }
    }
}

#[tokio::test]
async fn creating_an_agent_with_the_client_token_is_refused_and_never_reaches_the_runtime() {
    let Some(live) = start("create_refused").await else { return };
    let steps = node::run(&live, "create_refused", &json!({})).await;
    for (name, seq) in [("runtime_start", json!(1)), ("runtime_start_app_server", Value::Null)] {
        let refused = steps.get(name);
        assert_eq!(refused["seq"], seq, "numbered on the relay socket only: {refused}");
        assert_eq!(refused["type"], "runtime_start_response", "{refused}");
        assert_eq!(refused["success"], false, "{refused}");
        assert_eq!(refused["request_id"], "runtime-start-1", "{refused}");
        assert!(refused["error"].as_str().is_some_and(|e| e.contains("admin token")), "{refused}");
    }
    let commands = assert_no_bookkeeping_reached_the_runtime(&live);
    assert!(!commands.iter().any(|c| c["type"] == "runtime_start"), "refused at the bridge: {commands:?}");
}

#[tokio::test]
async fn two_clients_with_colliding_request_ids_each_get_only_their_own_replies() {
    let Some(live) = start("colliding_ids").await else { return };
    let scopes = [live.create_agent().await, live.create_agent().await];
    let steps = node::run(&live, "colliding_ids", &json!({"scopes": scopes})).await;

    assert_eq!(steps.get("infos")["request_ids"], json!(["app-server-info-1", "app-server-info-1"]));
    let syncs = steps.get("syncs")["replies"].as_array().unwrap().clone();
    for (reply, scope) in syncs.iter().zip(&scopes) {
        assert_eq!((reply["request_id"].as_str(), reply["success"].as_bool()), (Some("sync-2"), Some(true)), "{reply}");
        assert_eq!(&reply["runtime"], scope, "each client got the reply to its own sync: {reply}");
    }
    for seen in steps.all("seen") {
        let frames = seen["frames"].as_array().unwrap();
        assert_eq!(
            reply_ids(frames),
            ["app-server-info-1", "sync-2", "input-3"],
            "{}: its own, once each",
            seen["socket"]
        );
    }
    assert_every_seq_numbered_and_acked(steps.all("seen")[0]);
    let commands = assert_no_bookkeeping_reached_the_runtime(&live);
    let syncs: Vec<&str> =
        commands.iter().filter(|c| c["type"] == "sync").filter_map(|c| c["request_id"].as_str()).collect();
    let distinct: std::collections::BTreeSet<_> = syncs.iter().filter(|id| id.ends_with(":sync-2")).collect();
    assert_eq!(distinct.len(), 2, "the runtime saw two different ids: {syncs:?}");
}

#[tokio::test]
async fn letta_client_send_message_starts_a_turn_that_a_relay_socket_with_a_query_token_streams() {
    let Some(live) = start("send_message").await else { return };
    let scope = live.create_agent().await;
    let steps = node::run(&live, "send_message", &json!({"scope": scope})).await;

    assert_eq!(steps.get("sent")["success"], true, "{}", steps.get("sent"));
    let turn = steps.get("turn");
    assert_eq!(turn["finished"]["stop_reason"], "end_turn", "{turn}");
    assert_eq!(turn["text"], greeting().text(), "the deltas came on the stream channel");
    assert_every_seq_numbered_and_acked(steps.get("relay_seen"));
    let chats = live.model.chat_requests();
    assert!(chats.last().unwrap().body["messages"].to_string().contains("hi by REST"), "the message reached the model");
    let commands = assert_no_bookkeeping_reached_the_runtime(&live);
    let input = commands.iter().find(|c| c["type"] == "input").expect("the input reached the runtime");
    assert_eq!(input["runtime"], scope, "{input}");
    assert_eq!(input["payload"]["messages"][0]["client_message_id"], "cm-live-1", "{input}");
}

/// The bridge process waits for its client-socket tasks at shutdown, so
/// every socket sends its close frame (without that wait, about one run in
/// eight a socket was cut with 1006).
#[tokio::test]
async fn client_sockets_close_with_1001_when_the_bridge_shuts_down() {
    let Some(mut live) = start("client_shutdown").await else { return };
    let mut scenario = Scenario::start(&live, "held_open", &json!({}));
    scenario.step("open").await;
    live.bridge.stop();
    let steps: Steps = scenario.finish().await;
    for closed in steps.all("closed") {
        assert_eq!(closed["code"], 1001, "{closed}");
        assert_eq!(closed["reason"], "bridge shutting down", "{closed}");
    }
    assert_eq!(steps.all("closed").len(), 2);
}
