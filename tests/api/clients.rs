//! The sockets of Letta's own clients, with the fake runtime answering from
//! the recordings (fixtures `sync`, `turn`, `runtime_start`,
//! `runtime_start_resume`, `app_server_info`, `approval_allow`): the relay
//! socket's `seq` and its bookkeeping (`ack`, `ping`) that never reaches the
//! runtime, request ids namespaced per socket, the admin rule for creating
//! agents, channels, approvals to the socket that owns the conversation,
//! the order of `GET /events`, a socket the replay ring overtook, the
//! bound on a socket's commands in flight, metrics and shutdown. The live tests
//! (`tests/live/clients.rs`) run Letta's real client packages.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

fn scope(conversation: &str) -> Value {
    json!({"agent_id": "agent-1", "conversation_id": conversation})
}

fn message(scope: &Value, text: &str) -> Value {
    json!({"type": "input", "request_id": "input-1", "runtime": scope,
           "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}})
}

/// The socket prefix of a namespaced request id (`c<32 hex>:`).
fn namespace(request_id: &Value) -> &str {
    let id = request_id.as_str().expect("a request id");
    let (head, _) = id.split_once(':').expect("namespaced");
    assert!(head.len() == 33 && head.starts_with('c'), "{id}");
    head
}

#[tokio::test]
async fn a_relay_socket_numbers_every_frame_and_keeps_acks_and_pings_from_the_runtime() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut relay = app.relay("dev-a", None).await;

    relay.send(json!({"type": "ping"})).await;
    assert_eq!(relay.next().await, json!({"type": "pong"}), "a pong, unnumbered");
    relay.send(json!({"type": "ack", "seq": 1})).await;
    relay.send(json!({"type": "sync", "request_id": "sync-1", "runtime": scope("conv-1")})).await;

    let sent = rt.next_frame().await;
    assert_eq!(sent["type"], "sync", "the first frame the runtime got is the sync: no ping, no ack");
    assert!(sent["request_id"].as_str().unwrap().ends_with(":sync-1"), "{sent}");
    namespace(&sent["request_id"]);
    let reply = relay.next_of("sync_response").await;
    assert_eq!(reply["request_id"], "sync-1", "the client's own id back");
    let seqs: Vec<u64> = relay.seen[1..].iter().map(|f| f["seq"].as_u64().expect("numbered")).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "seq 1, 2, 3… per socket");
    assert!(seqs.len() > 1, "the recorded state events came before the reply");
}

#[tokio::test]
async fn two_clients_with_the_same_request_id_each_get_only_their_own_reply() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut relay = app.relay("dev-a", None).await;
    let mut app_server = app.app_server().await;

    relay.send(json!({"type": "sync", "request_id": "sync-1", "runtime": scope("conv-relay")})).await;
    app_server.send(json!({"type": "sync", "request_id": "sync-1", "runtime": scope("conv-app")})).await;
    let (a, b) = (rt.next_frame().await, rt.next_frame().await);
    assert_ne!(a["request_id"], b["request_id"], "two ids at the runtime");

    let mine = relay.next_of("sync_response").await;
    assert_eq!((mine["request_id"].as_str(), &mine["runtime"]), (Some("sync-1"), &scope("conv-relay")));
    let theirs = app_server.next_of("sync_response").await;
    assert_eq!((theirs["request_id"].as_str(), &theirs["runtime"]), (Some("sync-1"), &scope("conv-app")));
    assert!(theirs.get("seq").is_none(), "App-Server sockets carry no seq");
    // A marker after both replies: neither socket got the other's reply.
    app.post("/sync?wait=true", json!({"runtime": scope("conv-marker")})).await;
    for socket in [&mut relay, &mut app_server] {
        socket.next_matching("the marker's state", |f| f["runtime"] == scope("conv-marker")).await;
        let replies = socket.seen.iter().filter(|f| f["type"] == "sync_response").count();
        assert_eq!(replies, 1, "its own reply only, once: {:?}", socket.seen);
    }
}

#[tokio::test]
async fn creating_an_agent_needs_the_admin_token_but_resuming_a_conversation_does_not() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut relay = app.relay("dev-a", None).await;
    let create = json!({"type": "runtime_start", "request_id": "runtime-start-1",
                        "create_agent": {"body": {"name": "x", "model": "lmstudio/fake-model"}}, "create_conversation": {}});

    relay.send(create.clone()).await;
    let refused = relay.next().await;
    assert_eq!(refused["type"], "runtime_start_response", "the reply AppServerClient.runtimeStart waits for");
    assert_eq!((refused["success"].as_bool(), refused["request_id"].as_str()), (Some(false), Some("runtime-start-1")));
    assert!(refused["error"].as_str().unwrap().contains("admin token"), "{refused}");
    assert_eq!(refused["seq"], 1, "numbered like every reply on a relay socket");

    let resume = json!({"type": "runtime_start", "request_id": "runtime-start-2",
                        "agent_id": "agent-1", "conversation_id": "conv-1",
                        "recover_approvals": false, "force_device_status": true, "client_info": {"name": "test"}});
    relay.send(resume).await;
    let sent = rt.next_frame().await;
    assert_eq!((sent["type"].as_str(), sent["agent_id"].as_str()), (Some("runtime_start"), Some("agent-1")));
    let resumed = relay.next_of("runtime_start_response").await;
    assert_eq!((resumed["success"].as_bool(), resumed["request_id"].as_str()), (Some(true), Some("runtime-start-2")));
    assert_eq!(resumed["runtime"], scope("conv-1"), "the recorded resume, for this conversation");

    // Setting the device's directory or mode is the admin's too.
    relay
        .send(json!({"type": "runtime_start", "request_id": "runtime-start-3", "agent_id": "agent-1",
                      "conversation_id": "conv-1", "cwd": "/"}))
        .await;
    assert_eq!(relay.next_of("runtime_start_response").await["success"], false);

    let mut admin = app.client_socket("/app-server/ws", Some(ADMIN_TOKEN)).await;
    admin.send(create).await;
    assert_eq!(rt.next_frame().await["type"], "runtime_start", "the admin's create reached the runtime");
    let created = admin.next_of("runtime_start_response").await;
    assert_eq!((created["success"].as_bool(), created["request_id"].as_str()), (Some(true), Some("runtime-start-1")));
}

#[tokio::test]
async fn app_server_info_is_answered_as_the_runtime_recorded_it() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let mut socket = app.app_server().await;
    socket.send(json!({"type": "app_server_info", "request_id": "app-server-info-1"})).await;
    let info = socket.next_of("app_server_info_response").await;
    assert_eq!(info["request_id"], "app-server-info-1");
    assert_eq!((info["backend"].as_str(), info["protocol_version"].as_u64()), (Some("local"), Some(1)));
    assert_eq!(info["letta_code_version"], fixtures::RUNTIME_VERSION);
}

#[tokio::test]
async fn the_control_channel_gets_no_deltas_and_either_channel_takes_commands() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.play_recorded_turns();
    let mut control = app.relay("dev-a", Some("control")).await;
    let mut stream = app.relay("dev-a", Some("stream")).await;

    stream.send(message(&scope("conv-1"), "hi")).await;
    rt.next_frame().await;
    stream.next_of("turn_finished").await;
    control.next_of("turn_finished").await;
    assert!(stream.seen.iter().any(|f| f["type"] == "stream_delta"), "deltas on the stream channel");
    assert!(!control.seen.iter().any(|f| f["type"] == "stream_delta"), "none on control: {:?}", control.seen);
    assert!(stream.seen.iter().any(|f| f["type"] == "input_accepted"), "the reply on the socket that asked");
    assert!(!control.seen.iter().any(|f| f["type"] == "input_accepted"), "and only there");
}

#[tokio::test]
async fn an_approval_request_goes_only_to_the_socket_whose_message_started_the_turn() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.ask_for_approvals();
    let mut asker = app.app_server().await;
    let mut other = app.app_server().await;

    asker.send(message(&scope("conv-1"), "please create the file")).await;
    rt.next_frame().await;
    let asked = asker.next_of("control_request").await;
    assert_eq!(asked["request"]["subtype"], "can_use_tool");
    // The other socket sees the turn up to the question, but not the
    // question: a marker the runtime sends after it arrives after all that.
    rt.emit("update_queue", "agent-marker", "default", json!({"marker": true}));
    other.next_matching("the marker", |f| f["marker"] == true).await;
    assert!(!other.seen.iter().any(|f| f["type"] == "control_request"), "{:?}", other.seen);
    assert!(other.seen.iter().any(|f| f["delta"]["message_type"] == "approval_request_message"));

    let answer = json!({"type": "input", "request_id": "input-2", "runtime": scope("conv-1"),
                        "payload": {"kind": "approval_response", "request_id": asked["request_id"],
                                    "decision": {"behavior": "allow"}}});
    asker.send(answer).await;
    let sent = rt.next_frame().await;
    assert_eq!(sent["payload"]["request_id"], asked["request_id"], "the runtime's own id, not namespaced");
    assert_eq!(asker.next_of("input_accepted").await["request_id"], "input-2");
}

#[tokio::test]
async fn a_client_socket_gets_the_runtimes_events_in_the_order_of_get_events_and_none_of_the_bridges() {
    let app = spawn_app().await;
    let mut events = app.events("").await;
    let rt = app.runtime("dev-a").await;
    let mut relay = app.relay("dev-a", None).await;
    let other = app.runtime("dev-b").await;
    for i in 0..5 {
        rt.emit("update_queue", "agent-1", "conv-1", json!({"n": i}));
        other.emit("update_queue", "agent-9", "conv-9", json!({"n": i}));
    }
    rt.emit("update_loop_status", "agent-1", "conv-1", json!({"last": true}));
    relay.next_matching("the last event", |f| f["last"] == true).await;
    events.next_matching("the last event", |e| e.data["last"] == true).await;

    let on_stream: Vec<Value> = events
        .seen
        .iter()
        .filter(|e| e.data["runtime_id"] == "dev-a" && e.data["event_seq"].is_number())
        .map(|e| e.data["event_seq"].clone())
        .collect();
    let on_socket: Vec<Value> = relay.seen.iter().map(|f| f["event_seq"].clone()).collect();
    assert_eq!(on_socket, on_stream, "the same events, in the same order");
    assert!(relay.seen.iter().all(|f| f["runtime"]["agent_id"] == "agent-1"), "only its runtime's events");
    assert!(relay.seen.iter().all(|f| f.get("runtime_id").is_none()), "the runtime's frames as sent");
    other.close();
}

#[tokio::test]
async fn client_sockets_are_counted_in_metrics_by_kind() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let mut relay = app.relay("dev-a", None).await;
    let mut app_server = app.app_server().await;
    for socket in [&mut relay, &mut app_server] {
        socket.send(json!({"type": "ping"})).await;
        socket.next_of("pong").await;
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for kind in ["relay", "app_server"] {
        for name in [
            "letta_bridge_client_sockets",
            "letta_bridge_client_frames_in_total",
            "letta_bridge_client_frames_out_total",
        ] {
            let series = format!("{name}{{kind=\"{kind}\"}} ");
            let value = metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.parse::<f64>().ok());
            // Other tests of this binary count too: at least this one's.
            assert!(value.is_some_and(|v| v >= 1.0), "{series}in /metrics:\n{metrics}");
        }
    }
}

#[tokio::test]
async fn client_sockets_close_with_1001_at_shutdown() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let mut relay = app.relay("dev-a", None).await;
    let mut app_server = app.app_server().await;
    app.shutdown.cancel();
    for socket in [&mut relay, &mut app_server] {
        assert_eq!(socket.closed().await, Some((1001, "bridge shutting down".into())));
    }
}

#[tokio::test]
async fn sockets_are_refused_without_a_token_for_unknown_runtimes_and_bad_channels() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let status = |path: &str, token: Option<&str>| {
        let mut req = app.http.get(app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let relay = "/v1/environments/dev-a/status/ws";
    assert_eq!(status(relay, None).await, 401);
    assert_eq!(status(relay, Some(RUNTIME_TOKEN)).await, 401, "the runtime token is no client's");
    assert_eq!(status("/v1/environments/nowhere/status/ws", Some(CLIENT_TOKEN)).await, 404);
    assert_eq!(status(&format!("{relay}?channel=sideways"), Some(CLIENT_TOKEN)).await, 400);
    assert_eq!(status(relay, Some(CLIENT_TOKEN)).await, 400, "a plain GET is no upgrade (no `Connection: upgrade`)");
    assert_eq!(status("/app-server/ws", None).await, 401);

    // Browsers: the token in the query, on the relay path.
    let mut by_query = app.client_socket(&format!("{relay}?token={CLIENT_TOKEN}"), None).await;
    by_query.send(json!({"type": "ping"})).await;
    assert_eq!(by_query.next().await["type"], "pong");
}

#[tokio::test]
async fn an_app_server_socket_among_several_runtimes_names_them_and_closes_unless_one_is_chosen() {
    let app = spawn_app().await;
    let mut a = app.runtime("dev-a").await;
    let _b = app.runtime("dev-b").await;
    let mut ambiguous = app.app_server().await;
    let error = ambiguous.next().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["candidates"], json!(["dev-a", "dev-b"]), "{error}");
    assert_eq!(ambiguous.closed().await.map(|c| c.0), Some(1008));

    let mut chosen = app.client_socket("/app-server/ws?runtime=dev-a", Some(CLIENT_TOKEN)).await;
    chosen.send(json!({"type": "sync", "request_id": "sync-1", "runtime": scope("conv-1")})).await;
    assert_eq!(a.next_frame().await["type"], "sync", "to the runtime it chose");
    assert_eq!(chosen.next_of("sync_response").await["request_id"], "sync-1");
    chosen.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_message_sent_without_a_request_id_still_makes_its_socket_the_one_asked_for_approvals() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.ask_for_approvals();
    let mut asker = app.relay("dev-a", None).await;
    let mut other = app.app_server().await;
    // What AppServerClient.input() sends: no request_id, no reply awaited.
    let mut fire_and_forget = message(&scope("conv-1"), "please create the file");
    fire_and_forget.as_object_mut().unwrap().remove("request_id");
    asker.send(fire_and_forget).await;

    let sent = rt.next_frame().await;
    namespace(&sent["request_id"]);
    asker.next_of("control_request").await;
    rt.emit("update_queue", "agent-marker", "default", json!({"marker": true}));
    other.next_matching("the marker", |f| f["marker"] == true).await;
    assert!(!other.seen.iter().any(|f| f["type"] == "control_request"), "{:?}", other.seen);
}

#[tokio::test]
async fn a_socket_the_ring_overtook_goes_on_after_an_event_seq_gap_and_gets_approval_requests_again() {
    let app = spawn_app_with(|c| c.replay_events = 100).await;
    let mut rt = app.runtime("dev-a").await;
    let mut owner = app.app_server().await;
    let mut stalled = app.app_server().await;
    owner.send(json!({"type": "sync", "request_id": "sync-1", "runtime": scope("conv-1")})).await;
    let id = rt.next_frame().await["request_id"].clone();
    let accepted = json!({"request_id": format!("{}:input-1", namespace(&id)), "accepted": true});
    rt.emit("input_accepted", "agent-1", "conv-1", accepted);
    let ask = |n: u64| json!({"request_id": format!("perm-{n}"), "request": {"subtype": "can_use_tool"}});
    rt.emit("control_request", "agent-1", "conv-1", ask(1));
    rt.emit("update_queue", "agent-marker", "default", json!({"marker": true}));
    stalled.next_matching("the marker", |f| f["marker"] == true).await;
    assert!(!stalled.seen.iter().any(|f| f["type"] == "control_request"), "the owner's, not this socket's");

    // Not read while far more than socket buffers hold passes through a ring of 100.
    let mut fast = app.events("?types=big").await;
    let pad = "x".repeat(32 * 1024);
    for i in 0..600 {
        rt.emit("big", "agent-1", "conv-1", json!({"i": i, "pad": pad}));
        assert_eq!(fast.next().await.data["i"], i);
    }
    rt.emit("control_request", "agent-1", "conv-1", ask(2));
    // Who owns the conversation may have changed in what it missed: it gets the request.
    stalled.next_matching("the approval request after the gap", |f| f["request_id"] == "perm-2").await;
    let seqs: Vec<u64> = stalled.seen.iter().filter_map(|f| f["event_seq"].as_u64()).collect();
    assert!(seqs.windows(2).any(|w| w[1] > w[0] + 1), "the runtime's event_seq shows the gap");
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "in order, none twice");
}

#[tokio::test]
async fn a_socket_with_its_limit_of_commands_on_their_way_is_refused_the_next_as_busy() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let mut online = app.events("?types=runtime_online").await;
    // A runtime whose socket is open but has not answered the bridge's
    // first ping: the bridge holds its commands (for 2 s) meanwhile.
    let mut req = app.ws_url("/ws?deviceId=dev-a").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
    let (_silent, _) = tokio_tungstenite::connect_async(req).await.expect("the runtime's socket opens");
    online.next().await;
    let mut client = app.app_server().await;
    let limit = letta_bridge::letta::MAX_IN_FLIGHT;
    for i in 0..=limit {
        client.send(json!({"type": "sync", "request_id": format!("sync-{i}"), "runtime": scope("conv-1")})).await;
    }
    let refused = client.next_of("sync_response").await;
    assert_eq!(refused["request_id"], format!("sync-{limit}"), "the one over the limit: {refused}");
    assert_eq!(refused["success"], false);
    assert!(refused["error"].as_str().unwrap().contains(&format!("already has {limit} commands")), "{refused}");
}
