//! The commands the bridge sends, in the shapes the runtime accepted, and
//! the recorded replies that complete the requests waiting for them.

use letta_bridge_testkit::replay::{realise, replay_where};
use serde_json::{Value, json};

use super::type_name;
use crate::helpers::*;

/// Where a client sends a recorded command, with which token, and the body
/// it posts: the recorded command without what the endpoint fills in.
fn endpoint_for(command: &Value) -> (&'static str, &'static str, Value) {
    let mut body = realise(command);
    let approval = command["payload"]["kind"] == "approval_response";
    let path = match command["type"].as_str().unwrap() {
        "input" if approval => "/approval",
        "input" => "/input",
        "sync" => "/sync",
        "abort_message" => "/abort",
        _ => return ("/commands", ADMIN_TOKEN, body),
    };
    body.as_object_mut().unwrap().remove("type");
    if approval {
        body["payload"].as_object_mut().unwrap().remove("kind");
    }
    (path, CLIENT_TOKEN, body)
}

#[tokio::test]
async fn recorded_replies_complete_waiting_requests_by_request_id_and_unanswered_commands_time_out() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-conf").await;
    rt.quiet();
    for name in fixtures::exchanges() {
        for i in 0..fixtures::step_count(name) {
            let recorded = fixtures::recorded_command(name, i);
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
            let replies = fixtures::recorded_replies(name, i);
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
            let expected = replay_where(name, i, &sent, &|| 0, |f| f["request_id"] == recorded["request_id"]);
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
        (s, a) => assert_eq!(type_name(s), type_name(a), "{at}: a different JSON type"),
    }
}

#[tokio::test]
async fn commands_leave_the_bridge_in_the_shape_the_runtime_accepted() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-conf").await;
    rt.quiet();
    // (exchange, step): commands the runtime answered as accepted.
    let accepted = [
        ("turn", 0),
        ("sync", 0),
        ("abort_idle", 0),
        ("approval_unknown", 0),
        ("abort", 1),
        ("approval_allow", 2),
        ("approval_deny", 1),
    ];
    for (name, i) in accepted {
        let recorded = realise(fixtures::recorded_command(name, i));
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
    assert_same_shape(&resync, &realise(fixtures::recorded_command("sync", 0)), &[], "re-sync");
    assert!(fixtures::is_runtime_scope(&resync["runtime"]), "the runtime takes the re-sync's scope");
}
