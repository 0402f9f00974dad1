//! Runtimes: registration, direct connect, heartbeats, replacement, routing.

use serde_json::{Value, json};

use crate::helpers::*;

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_registered_runtime_is_listed_online_with_its_name_and_version() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let list = app.get_json("/runtimes").await;
    let rt = &list[0];
    assert_eq!(rt["id"], "dev-a");
    assert_eq!(rt["online"], true);
    assert_eq!(rt["connection_name"], "dev-a-name");
    assert_eq!(rt["version"], "0.32.18");
    assert_eq!(rt["os"], "linux");
    assert!(rt["connection_id"].as_str().unwrap().starts_with("conn-"));
    assert!(rt["online_since"].as_str().unwrap().ends_with('Z'));
    let status = app.status().await;
    assert_eq!(status["runtimes_online"], 1);
    assert_eq!(status["ready"], true);
}

#[tokio::test]
async fn a_runtime_may_connect_straight_to_ws_without_registering() {
    let app = spawn_app().await;
    let mut rt = app.direct_runtime(None).await;
    assert_eq!(ids(&app.get_json("/runtimes").await), ["direct"]);
    let res = app.post("/sync", scoped(json!({}))).await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["type"], "sync");
}

#[tokio::test]
async fn every_json_ping_from_the_runtime_gets_a_json_pong() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    for _ in 0..3 {
        rt.send(json!({"type": "ping"}));
        assert_eq!(rt.next_frame().await, json!({"type": "pong"}));
    }
    // Pings are answered, not published.
    let mut sse = app.events("").await;
    rt.send(json!({"type": "ping"}));
    rt.emit("marker", "a", "c", json!({}));
    assert_eq!(sse.next().await.event, "marker");
}

#[tokio::test]
async fn the_bridge_checks_liveness_with_ping_control_frames_and_records_pongs() {
    let app = spawn_app_with(|c| c.ping_interval = std::time::Duration::from_millis(50)).await;
    let mut rt = app.runtime("dev-a").await;
    loop {
        if let Seen::Ping = rt.next_seen().await {
            break;
        }
    }
    // The fake runtime's WebSocket stack answers the ping; wait for the bridge to record it.
    let mut sse = app.events("").await;
    rt.emit("marker", "a", "c", json!({}));
    sse.next_of("marker").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = app.get_json("/runtimes").await;
        if list[0]["last_pong_at"].is_string() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no pong recorded: {list}");
        rt.next_seen().await; // the next ping round trip
    }
}

#[tokio::test]
async fn a_runtime_that_stops_answering_pings_is_marked_offline() {
    let app = spawn_app_with(|c| {
        c.ping_interval = std::time::Duration::from_millis(50);
        c.max_missed_pongs = 2;
    })
    .await;
    let rt = app.runtime("dev-a").await;
    let mut sse = app.events("?types=runtime_offline").await;
    rt.silence();
    let offline = sse.next().await;
    assert_eq!(offline.data["runtime_id"], "dev-a");
    assert_eq!(offline.data["reason"], "heartbeat_timeout");
    assert_eq!(app.get_as(None, "/readyz?runtimes=1").await.status(), 503);
}

#[tokio::test]
async fn readiness_is_the_instances_and_runtimes_1_also_asks_for_a_runtime() {
    let app = spawn_app().await;
    let ready = |query: &'static str| {
        let app = &app;
        async move {
            let res = app.get_as(None, &format!("/readyz{query}")).await;
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    // No runtime yet: the instance serves (a probe must not keep it out of
    // service, or no runtime could ever reach it), and says how many are online.
    let (status, body) = ready("").await;
    assert_eq!((status, body["status"].as_str(), body["runtimes_online"].as_u64()), (200, Some("ok"), Some(0)));
    let (status, body) = ready("?runtimes=1").await;
    assert_eq!((status, body["reason"].as_str()), (503, Some("runtimes")), "{body}");
    let rt = app.runtime("dev-a").await;
    assert_eq!(ready("?runtimes=1").await.0, 200);
    assert_eq!(ready("?runtimes=2").await.0, 503);
    let mut sse = app.events("?types=runtime_offline").await;
    rt.close();
    assert_eq!(sse.next().await.data["reason"], "closed");
    assert_eq!(ready("?runtimes=1").await.0, 503);
    assert_eq!(ready("").await.0, 200);
    assert_problem(app.get_as(None, "/readyz?runtimes=many").await, 400).await;
    let list = app.get_json("/runtimes").await;
    assert_eq!(list[0]["online"], false);
    assert!(list[0]["offline_since"].is_string());
}

#[tokio::test]
async fn a_new_connection_from_the_same_device_replaces_the_old_one() {
    let app = spawn_app().await;
    let mut old = app.runtime("dev-a").await;
    let mut sse = app.events("").await;
    let mut new = app.runtime("dev-a").await;
    assert_eq!(old.closed().await, Some((1000, "Replaced by new connection".into())));
    // The old socket's late close must not mark the new connection offline.
    new.emit("marker", "a", "c", json!({}));
    let mut seen = Vec::new();
    loop {
        let e = sse.next().await;
        seen.push(e.event.clone());
        if e.event == "marker" {
            break;
        }
    }
    assert_eq!(seen, ["runtime_online", "marker"], "no runtime_offline for the replaced socket");
    let list = app.get_json("/runtimes").await;
    assert_eq!(ids(&list), ["dev-a"]);
    assert_eq!(list[0]["online"], true);
    assert_eq!(app.post("/sync", scoped(json!({}))).await.status(), 202);
    assert_eq!(new.next_frame().await["type"], "sync");
}

#[tokio::test]
async fn two_devices_are_two_runtimes_and_commands_must_name_one() {
    let app = spawn_app().await;
    let mut a = app.runtime("dev-a").await;
    let mut b = app.runtime("dev-b").await;
    assert_eq!(ids(&app.get_json("/runtimes").await), ["dev-a", "dev-b"]);

    let problem = assert_problem(app.post("/sync", scoped(json!({}))).await, 409).await;
    assert_eq!(problem["candidates"], json!(["dev-a", "dev-b"]));

    assert_eq!(app.post("/sync?runtime=dev-b", scoped(json!({"request_id": "to-b"}))).await.status(), 202);
    assert_eq!(b.next_frame().await["request_id"], "to-b");
    assert_eq!(app.post("/runtimes/dev-a/sync", scoped(json!({"request_id": "to-a"}))).await.status(), 202);
    assert_eq!(a.next_frame().await["request_id"], "to-a");
    // Each got only its own command.
    a.send(json!({"type": "ping"}));
    assert_eq!(a.next_frame().await["type"], "pong");
    b.send(json!({"type": "ping"}));
    assert_eq!(b.next_frame().await["type"], "pong");
}

#[tokio::test]
async fn naming_an_unknown_runtime_is_404_and_an_offline_one_503() {
    let app = spawn_app().await;
    let a = app.runtime("dev-a").await;
    assert_problem(app.post("/sync?runtime=nope", scoped(json!({}))).await, 404).await;
    assert_problem(app.post("/runtimes/dev-a/sync?runtime=dev-b", scoped(json!({}))).await, 400).await;
    let mut sse = app.events("?types=runtime_offline").await;
    a.close();
    sse.next().await;
    let res = app.post("/runtimes/dev-a/sync", scoped(json!({}))).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503).await;
}

#[tokio::test]
async fn commands_with_no_runtime_online_are_503_with_retry_after() {
    let app = spawn_app().await;
    for path in ["/input", "/sync", "/abort", "/approval", "/commands"] {
        let body = match path {
            "/input" => json!({"payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}}),
            "/approval" => json!({"payload": {"request_id": "ap", "decision": {"behavior": "allow"}}}),
            "/commands" => json!({"type": "sync"}),
            _ => json!({}),
        };
        let body = scoped(body);
        let res = app.post(path, body).await;
        assert_eq!(res.headers()["retry-after"], "2", "{path}");
        assert_problem(res, 503).await;
    }
}

#[tokio::test]
async fn online_and_offline_events_carry_the_runtime_id() {
    let app = spawn_app().await;
    let mut sse = app.events("?types=runtime_online,runtime_offline").await;
    let rt = app.runtime("dev-a").await;
    let online = sse.next().await;
    assert_eq!(online.event, "runtime_online");
    assert_eq!(online.data["runtime_id"], "dev-a");
    assert_eq!(online.data["version"], "0.32.18");
    rt.drop_connection();
    let offline = sse.next().await;
    assert_eq!(offline.event, "runtime_offline");
    assert_eq!(offline.data["runtime_id"], "dev-a");
    assert_eq!(offline.data["reason"], "connection_lost", "dropped without a close frame");
}

#[tokio::test]
async fn runtime_status_says_each_conversation_asked_about_is_idle_so_the_runtime_may_recover_it() {
    let app = spawn_app().await;
    let path = "/v1/agents/agent-local-1/runtime-status?conversation_ids=local-conv-1,local-conv-2";
    assert_eq!(app.get_as(Some(CLIENT_TOKEN), path).await.status(), 401, "runtime token only");
    let res = app.get_as(Some(RUNTIME_TOKEN), path).await;
    assert_eq!(res.status(), 200);
    let status: Value = res.json().await.unwrap();
    // The runtime reads `statuses.find(s => s.conversation_id === id)`, then
    // `has_conflicting_listeners` and `state === "IDLE"` (letta-code 0.32.18,
    // recovery-ownership.ts).
    assert_eq!(
        status,
        json!({"agent_id": "agent-local-1", "statuses": [
            {"conversation_id": "local-conv-1", "state": "IDLE", "has_conflicting_listeners": false},
            {"conversation_id": "local-conv-2", "state": "IDLE", "has_conflicting_listeners": false}
        ]})
    );
}

#[tokio::test]
async fn commands_to_a_new_connection_wait_for_its_first_pong() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    // The real runtime sets up its side just after the upgrade; a command
    // that arrives before then gets input_accepted but its turn's events are
    // lost. Its WebSocket library answers pings once it is open, so the
    // bridge pings first and holds commands until the pong.
    let app = spawn_app().await;
    let mut request = app.ws_url("/ws?deviceId=slow-start").into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, Message::Ping(_)), "the bridge pings first, got {first:?}");

    // tungstenite sends its pong on the next read: until then the runtime is unsettled.
    let body = json!({"runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
                      "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}});
    let held = app.post("/input?runtime=slow-start&wait=true&timeout_ms=300", body.clone()).await;
    let problem = assert_problem(held, 504).await;
    assert!(problem["detail"].as_str().unwrap().contains("socket did not take"), "{problem}");

    // Reading sends the pong and settles the connection. The command whose
    // request was answered 504 is never sent (the client was told it was
    // not); the next one is.
    let mut after = body;
    after["request_id"] = json!("after-pong");
    let pending = app.post_in_background("/input?runtime=slow-start", after);
    let next = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(pending.await.unwrap().status(), 202);
    let frame: Value = serde_json::from_str(next.to_text().unwrap()).unwrap();
    assert_eq!((frame["type"].as_str(), frame["request_id"].as_str()), (Some("input"), Some("after-pong")));
    let _ = socket.close(None).await;
}
