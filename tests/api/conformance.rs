//! Conformance with the real runtime: what letta-code sent and accepted in
//! the recording (tests/fixtures/letta-code-<version>/, by tests/record) is
//! checked against the bridge. The bridge must accept every request and
//! frame the runtime sends, and send commands in the shapes the runtime
//! accepted. A failure here is protocol drift: re-record
//! (`tests/fixtures/record.sh`) and compare.

use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::fixtures::{self, exchanges, realise, recorded_command, recorded_replies, shape};
use crate::helpers::*;

/// Headers the HTTP client or the WebSocket handshake sets itself.
const TRANSPORT_HEADERS: &[&str] =
    &["host", "content-length", "connection", "authorization", "upgrade", "sec-websocket-key", "sec-websocket-version"];

/// Events only the bridge publishes (PROTOCOL.md §4).
const BRIDGE_EVENTS: &[&str] = &["runtime_online", "runtime_offline", "reset", "lagged"];

/// The recorded headers of a request, as `(name, value)` to send again.
fn recorded_headers(request: &Value) -> Vec<(String, String)> {
    let headers = request["headers"].as_object().expect("recorded headers");
    headers
        .iter()
        .filter(|(k, _)| !TRANSPORT_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), realise(v).as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[tokio::test]
async fn the_recorded_registration_requests_are_answered_with_what_the_runtime_needs() {
    let app = spawn_app().await;
    for request in fixtures::fixture("register")["requests"].as_array().unwrap() {
        let path = request["path"].as_str().unwrap();
        let method = Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
        let mut req = app.http.request(method, app.url(path)).bearer_auth(RUNTIME_TOKEN);
        for (name, value) in recorded_headers(request) {
            req = req.header(name, value);
        }
        if !request["body"].is_null() {
            req = req.body(realise(&request["body"]).to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        if path != "/v1/environments/register" {
            continue;
        }
        let answer: Value = res.json().await.unwrap();
        assert!(answer["connectionId"].as_str().is_some_and(|id| !id.is_empty()), "{answer}");
        let ws_url = answer["wsUrl"].as_str().expect("wsUrl");
        assert!(ws_url.starts_with(&format!("ws://{}/", app.addr)), "{ws_url}");
        // One socket per runtime: split channels and paired generations off.
        assert_ne!(answer["supportsSplitStatusChannels"], true);
        assert_ne!(answer["supportsPairedListenerGenerations"], true);
        // The recorder answered as the bridge did when recording: same shape.
        assert_eq!(shape(&answer), shape(&request["answer"]["body"]), "the registration answer changed shape");
    }
}

#[tokio::test]
async fn the_recorded_websocket_upgrade_is_served_and_the_recorded_ping_gets_a_pong() {
    let app = spawn_app().await;
    let res = app.register_as(Some(RUNTIME_TOKEN), "conformance-device").await;
    assert_eq!(res.status(), 200);
    let ws_url = res.json::<Value>().await.unwrap()["wsUrl"].as_str().unwrap().to_owned();
    let upgrade = &fixtures::fixture("connect")["upgrade"];
    let query = realise(&upgrade["query"]).as_str().unwrap().replace(fixtures::DEVICE, "conformance-device");
    let mut req = format!("{ws_url}?{query}").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
    for (name, value) in recorded_headers(upgrade) {
        req.headers_mut()
            .insert(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let mut rt = FakeRuntime::connect_request(req).await.expect("the recorded upgrade is accepted");

    let pings = fixtures::fixture("ping")["runtime_pings"].as_array().unwrap();
    assert!(!pings.is_empty(), "the recording holds a JSON ping");
    for ping in pings {
        rt.send(ping["frame"].clone());
        assert_eq!(rt.next_frame().await, json!({"type": "pong"}), "a JSON ping gets a JSON pong");
    }
    let listed = app.get_json("/runtimes").await;
    assert_eq!(listed[0]["id"], "conformance-device");
    assert_eq!(listed[0]["online"], true);
    assert_eq!(listed[0]["version"], fixtures::RUNTIME_VERSION);
}

/// Every frame of every recorded exchange, in recorded order, each made to
/// answer its recorded command (placeholders realised).
fn every_recorded_frame(next_seq: &dyn Fn() -> u64) -> Vec<Value> {
    let mut frames = Vec::new();
    for name in exchanges() {
        let steps = fixtures::fixture(name)["steps"].as_array().unwrap().len();
        for i in 0..steps {
            let command = realise(recorded_command(name, i));
            frames.extend(fixtures::replay(name, i, &command, next_seq));
        }
    }
    frames
}

#[tokio::test]
async fn every_recorded_runtime_frame_reaches_subscribers_unchanged_but_for_runtime_id() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-conf").await;
    rt.quiet();
    let mut sse = app.events("").await;
    let seq = std::sync::atomic::AtomicU64::new(0);
    let frames = every_recorded_frame(&|| seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
    assert!(frames.len() > 50, "the recording has {} frames", frames.len());
    for frame in &frames {
        rt.send(frame.clone());
    }
    for (n, frame) in frames.iter().enumerate() {
        let event = loop {
            let e = sse.next().await;
            if !BRIDGE_EVENTS.contains(&e.event.as_str()) {
                break e;
            }
        };
        assert_eq!(event.event, frame["type"].as_str().unwrap(), "frame {n}: the SSE event type is the frame type");
        let mut data = event.data.as_object().unwrap().clone();
        assert_eq!(data.remove("runtime_id"), Some(json!("dev-conf")), "frame {n}: runtime_id added");
        assert_eq!(Value::Object(data), *frame, "frame {n} ({}) reached subscribers changed", frame["type"]);
    }
}

/// Where a client sends a recorded command, with which token, and the body
/// it posts: the recorded command without what the endpoint fills in.
fn endpoint_for(command: &Value) -> (&'static str, &'static str, Value) {
    let mut body = realise(command);
    let obj = body.as_object_mut().unwrap();
    let kind = obj["type"].as_str().unwrap().to_owned();
    let typed = |obj: &mut Map<String, Value>| {
        obj.remove("type");
    };
    match kind.as_str() {
        "input" if command["payload"]["kind"] == "approval_response" => {
            typed(obj);
            obj["payload"].as_object_mut().unwrap().remove("kind");
            ("/approval", CLIENT_TOKEN, body)
        }
        "input" => {
            typed(obj);
            ("/input", CLIENT_TOKEN, body)
        }
        "sync" => {
            typed(obj);
            ("/sync", CLIENT_TOKEN, body)
        }
        "abort_message" => {
            typed(obj);
            ("/abort", CLIENT_TOKEN, body)
        }
        _ => ("/commands", ADMIN_TOKEN, body),
    }
}

#[tokio::test]
async fn recorded_replies_complete_waiting_requests_by_request_id_and_unanswered_commands_time_out() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-conf").await;
    rt.quiet();
    for name in exchanges() {
        let steps = fixtures::fixture(name)["steps"].as_array().unwrap().len();
        for i in 0..steps {
            let recorded = recorded_command(name, i);
            if recorded["request_id"].is_null() {
                continue;
            }
            let (path, token, mut body) = endpoint_for(recorded);
            body["request_id"] = json!(format!("conf-{name}-{i}"));
            if path != "/commands" && !fixtures::is_runtime_scope(&body["runtime"]) {
                // The runtime drops this unanswered (recorded); the bridge refuses it instead.
                assert_problem(app.post(path, body).await, 422).await;
                continue;
            }
            if recorded["type"] == "change_device_state" {
                // Never answered by request_id (recorded): the wait ends once it is written.
                let res = app.post_as(Some(token), &format!("{path}?wait=true"), body).await;
                assert_eq!(res.status(), 202, "{name}/{i}");
                rt.next_frame().await;
                continue;
            }
            let replies = recorded_replies(name, i);
            let timeout = if replies.is_empty() { 300 } else { 5000 };
            let req = app
                .http
                .post(app.url(&format!("{path}?wait=true&timeout_ms={timeout}")))
                .bearer_auth(token)
                .json(&body);
            let mut pending = tokio::spawn(async move { req.send().await.unwrap() });
            let sent = tokio::select! {
                frame = rt.next_frame() => frame,
                res = &mut pending => {
                    // Refused before sending (e.g. awaiting a command the
                    // runtime never answers): an answer, not a hang.
                    let status = res.unwrap().status();
                    assert!(status.is_client_error() && replies.is_empty(), "{name}/{i}: {status} before sending");
                    continue;
                }
            };
            assert_eq!(sent["request_id"], body["request_id"], "{name}/{i}: the command went out");
            rt.play(name, i, &sent);
            let res = pending.await.unwrap();
            if replies.is_empty() {
                // The runtime answered nothing by request_id (recorded): the wait ends in 504.
                assert_eq!(res.status(), 504, "{name}/{i}: the runtime recorded no reply");
                continue;
            }
            assert_eq!(res.status(), 200, "{name}/{i}");
            let mut reply: Value = res.json().await.unwrap();
            assert_eq!(reply.as_object_mut().unwrap().remove("runtime_id"), Some(json!("dev-conf")));
            let expected = fixtures::replay_where(name, i, &sent, &|| 0, |f| f["request_id"] == recorded["request_id"]);
            assert_eq!(reply, expected[0], "{name}/{i}: the wait answers with the runtime's reply frame");
        }
    }
    assert_eq!(app.status().await["pending_replies"], 0);
}

/// Asserts `sent` has the shape of `accepted`: the same keys with values of
/// the same JSON types, all the way down, except keys in `optional` (fields
/// the runtime accepts but the recorded command did or did not carry).
fn assert_same_shape(sent: &Value, accepted: &Value, optional: &[&str], at: &str) {
    match (sent, accepted) {
        (Value::Object(s), Value::Object(a)) => {
            for (k, v) in s {
                match a.get(k) {
                    Some(av) => assert_same_shape(v, av, optional, &format!("{at}.{k}")),
                    None => {
                        assert!(optional.contains(&k.as_str()), "{at}.{k}: sent, but not in what the runtime accepted")
                    }
                }
            }
            for k in a.keys() {
                assert!(
                    s.contains_key(k) || optional.contains(&k.as_str()),
                    "{at}.{k}: the runtime got it, the bridge does not send it"
                );
            }
        }
        (Value::Array(s), Value::Array(a)) => {
            if let (Some(sv), Some(av)) = (s.first(), a.first()) {
                assert_same_shape(sv, av, optional, &format!("{at}[0]"));
            }
        }
        (s, a) => assert_eq!(fixtures::type_name(s), fixtures::type_name(a), "{at}: a different JSON type"),
    }
}

#[tokio::test]
async fn commands_leave_the_bridge_in_the_shape_the_runtime_accepted() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-conf").await;
    rt.quiet();
    // (exchange, step): commands the runtime answered as accepted.
    for (name, i) in [("turn", 0), ("sync", 0), ("abort_idle", 0), ("approval_unknown", 0), ("abort", 1)] {
        let recorded = realise(recorded_command(name, i));
        let (path, token, mut body) = endpoint_for(&recorded);
        // What a client posts: no request_id, no client_message_id (the
        // bridge may fill both in).
        body.as_object_mut().unwrap().remove("request_id");
        if let Some(messages) = body.pointer_mut("/payload/messages").and_then(Value::as_array_mut) {
            for m in messages {
                m.as_object_mut().unwrap().remove("client_message_id");
            }
        }
        let res = app.post_as(Some(token), path, body).await;
        assert_eq!(res.status(), 202, "{path}");
        let sent = rt.next_frame().await;
        assert_same_shape(&sent, &recorded, &["client_message_id"], path);
        assert!(fixtures::is_runtime_scope(&sent["runtime"]), "{path}: the runtime takes this scope");
        assert!(
            sent["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{path}: a request_id the runtime echoes"
        );
    }
}

#[tokio::test]
async fn commands_without_a_runtime_scope_are_refused_rather_than_sent_into_silence() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-conf").await;
    for path in ["/sync", "/abort"] {
        assert_problem(app.post(path, json!({})).await, 422).await;
    }
    let agent_only = json!({"runtime": {"agent_id": "agent-1"},
                            "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}});
    assert_problem(app.post("/input", agent_only).await, 422).await;
}

#[tokio::test]
async fn a_recorded_turn_reaches_subscribers_as_the_scripted_reply_and_its_end() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-conf").await;
    rt.play_recorded_turns();
    let mut sse = app.events("").await;
    let body = json!({"runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
                      "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}});
    let reply: Value = app.post("/input?wait=true", body).await.json().await.unwrap();
    assert_eq!((reply["type"].as_str(), reply["disposition"].as_str()), (Some("input_accepted"), Some("started")));
    let mut text = String::new();
    let finished = loop {
        let e = sse.next().await;
        if e.event == "stream_delta" && e.data["delta"]["message_type"] == "assistant_message" {
            assert_eq!(e.data["runtime"], json!({"agent_id": "agent-1", "conversation_id": "conv-1"}));
            text.push_str(e.data["delta"]["content"][0]["text"].as_str().unwrap());
        }
        if e.event == "turn_finished" {
            break e;
        }
    };
    assert_eq!(text, "Hello from the scripted model.", "the model's pieces as the runtime streamed them");
    assert_eq!(finished.data["stop_reason"], "end_turn");
}

#[tokio::test]
async fn the_bridges_resync_after_a_reconnect_has_the_shape_of_the_recorded_sync() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-conf").await;
    let mut sse = app.events("?types=marker,runtime_offline").await;
    rt.emit("marker", "agent-1", "conv-1", json!({}));
    sse.next_of("marker").await;
    rt.close();
    sse.next_of("runtime_offline").await;
    let mut again = app.runtime("dev-conf").await;
    let resync = again.next_frame().await;
    assert_same_shape(&resync, &realise(recorded_command("sync", 0)), &[], "re-sync");
    assert!(fixtures::is_runtime_scope(&resync["runtime"]), "the runtime takes the re-sync's scope");
}

/// What the runtime did after a close with this fixture's code: (code,
/// reason, registered again, connected again).
fn recorded_close(name: &str) -> (u16, String, bool, bool) {
    let f = fixtures::fixture(name);
    let paths: Vec<&str> = f["requests"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    (
        f["close"]["code"].as_u64().unwrap() as u16,
        f["close"]["reason"].as_str().unwrap().to_owned(),
        paths.contains(&"/v1/environments/register"),
        f["reconnected"] == true,
    )
}

#[tokio::test]
async fn the_bridges_close_codes_make_the_runtime_do_what_the_recording_shows() {
    // A replaced socket: the runtime stops reconnecting (it would fight the new one).
    let (code, reason, _, reconnected) = recorded_close("replaced_1000");
    assert!(!reconnected, "the recording: no reconnect after {code} {reason:?}");
    let app = spawn_app().await;
    let mut old = app.runtime("dev-conf").await;
    let _new = app.runtime("dev-conf").await;
    assert_eq!(old.closed().await, Some((code, reason)));

    // An unknown connection id: the runtime registers again.
    let (code, _, registered, reconnected) = recorded_close("reregister_after_1008");
    assert!(registered && reconnected, "the recording: {code} makes the runtime register again");
    let url = app.ws_url("/ws/conn-unknown?deviceId=dev-x");
    let mut stale = FakeRuntime::connect(&url, Some(RUNTIME_TOKEN)).await.unwrap();
    assert_eq!(stale.closed().await.map(|(c, _)| c), Some(code));

    // Shutdown: the runtime reconnects at once, without registering again.
    let (code, reason, registered, reconnected) = recorded_close("reconnect_after_1001");
    assert!(reconnected && !registered, "the recording: {code} makes the runtime reconnect");
    let mut rt = app.runtime("dev-other").await;
    app.shutdown.cancel();
    assert_eq!(rt.closed().await, Some((code, reason)));
}
