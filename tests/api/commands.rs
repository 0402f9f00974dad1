//! Commands: the frame the runtime receives, 202 answers, awaited replies.

use serde_json::{Value, json};

use crate::helpers::*;

fn message(text: &str) -> Value {
    json!({
        "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}
    })
}

#[tokio::test]
async fn input_reaches_the_runtime_as_a_v2_input_frame() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let res = app.post("/input", message("hello")).await;
    assert_eq!(res.status(), 202);
    let accepted: Value = res.json().await.unwrap();
    let frame = rt.next_frame().await;
    assert_eq!(frame["type"], "input");
    assert_eq!(frame["request_id"], accepted["request_id"]);
    assert_eq!(frame["runtime"], json!({"agent_id": "agent-1", "conversation_id": "conv-1"}));
    assert_eq!(frame["payload"], json!({"kind": "create_message", "messages": [{"role": "user", "content": "hello"}]}));
    assert_eq!(accepted["runtime_id"], "dev-a");
    assert_eq!(accepted["type"], "input");
    assert!(accepted["request_id"].as_str().unwrap().starts_with("req-"));
    let (epoch, _) = seq_of(accepted["cursor"].as_str().unwrap());
    assert_eq!(epoch, app.status().await["events"]["epoch"]);
}

#[tokio::test]
async fn a_callers_request_id_and_the_admins_unknown_fields_are_passed_through() {
    // Unknown fields need the admin token (tests/api/privileges.rs).
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut body = message("x");
    body["request_id"] = json!("my-id-1");
    body["future_field"] = json!({"nested": [1, 2]});
    body["payload"]["messages"][0]["client_message_id"] = json!("cm-1");
    let accepted: Value = app.post_as(Some(ADMIN_TOKEN), "/input", body).await.json().await.unwrap();
    assert_eq!(accepted["request_id"], "my-id-1");
    let frame = rt.next_frame().await;
    assert_eq!(frame["request_id"], "my-id-1");
    assert_eq!(frame["future_field"], json!({"nested": [1, 2]}));
    assert_eq!(frame["payload"]["messages"][0]["client_message_id"], "cm-1");
}

#[tokio::test]
async fn sync_abort_and_approval_become_their_v2_frames() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let scope = json!({"agent_id": "agent-1", "conversation_id": "conv-1"});

    app.post("/sync", json!({"runtime": scope, "recover_approvals": true})).await;
    let f = rt.next_frame().await;
    assert_eq!((f["type"].as_str(), f["recover_approvals"].as_bool()), (Some("sync"), Some(true)));

    app.post("/abort", json!({"runtime": scope, "run_id": "run-9"})).await;
    let f = rt.next_frame().await;
    assert_eq!((f["type"].as_str(), f["run_id"].as_str()), (Some("abort_message"), Some("run-9")));

    let res = app
        .post("/approval", json!({"runtime": scope, "payload": {"request_id": "ap-1", "decision": {"behavior": "deny", "message": "no"}}}))
        .await;
    assert_eq!(res.status(), 202);
    let f = rt.next_frame().await;
    assert_eq!(f["type"], "input");
    assert_eq!(
        f["payload"],
        json!({"kind": "approval_response", "request_id": "ap-1", "decision": {"behavior": "deny", "message": "no"}})
    );
}

#[tokio::test]
async fn wait_true_returns_the_runtimes_reply_frame() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    // The real runtime drops a sync without a runtime scope unanswered.
    let scope = json!({"agent_id": "agent-1", "conversation_id": "conv-1"});
    let res = app.post("/sync?wait=true", json!({"request_id": "s-1", "runtime": scope})).await;
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["type"], "sync_response");
    assert_eq!(reply["request_id"], "s-1");
    assert_eq!(reply["success"], true);
    assert_eq!(reply["runtime_id"], "dev-a");

    let reply: Value = app.post("/input?wait=true", message("hi")).await.json().await.unwrap();
    assert_eq!(reply["type"], "input_accepted");
    assert_eq!(reply["disposition"], "started");

    let reply: Value =
        app.post("/abort?wait=true&timeout_ms=2000", json!({"runtime": scope})).await.json().await.unwrap();
    assert_eq!(reply["type"], "abort_message_response");
    assert_eq!(reply["aborted"], false, "nothing was running");

    let reply: Value = app
        .post_as(Some(ADMIN_TOKEN), "/commands?wait=true", json!({"type": "list_in_directory", "path": "/"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["type"], "list_in_directory_response");
    assert_eq!(app.status().await["pending_replies"], 0);
}

#[tokio::test]
async fn an_unanswered_wait_times_out_with_504_and_leaves_nothing_pending() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let res = app.post("/sync?wait=true&timeout_ms=150", scoped(json!({"request_id": "slow-1"}))).await;
    let problem = assert_problem(res, 504).await;
    assert!(problem["detail"].as_str().unwrap().contains("slow-1"));
    assert_eq!(rt.next_frame().await["request_id"], "slow-1", "the command was still delivered");
    assert_eq!(app.status().await["pending_replies"], 0);
}

#[tokio::test]
async fn a_wait_fails_with_502_when_the_runtime_disconnects_meanwhile() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let waiting = app.post_in_background("/sync?wait=true&timeout_ms=30000", scoped(json!({})));
    rt.next_frame().await; // the sync arrived; now vanish without answering
    rt.drop_connection();
    let res = tokio::time::timeout(WAIT, waiting).await.expect("fails fast").unwrap();
    assert_problem(res, 502).await;
    assert_eq!(app.status().await["pending_replies"], 0);
}

#[tokio::test]
async fn the_same_request_id_cannot_be_awaited_twice_at_once() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let first = app.post_in_background("/sync?wait=true&timeout_ms=5000", scoped(json!({"request_id": "dup"})));
    rt.next_frame().await;
    assert_problem(app.post("/sync?wait=true", scoped(json!({"request_id": "dup"}))).await, 409).await;
    rt.send(json!({"type": "sync_response", "request_id": "dup", "success": true}));
    assert_eq!(first.await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_cursor_at_acceptance_resumes_exactly_after_the_command() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let mut live = app.events("").await;
    rt.emit("before", "a", "c", json!({}));
    live.next_of("before").await; // published before the command is accepted
    let scope = json!({"agent_id": "agent-1", "conversation_id": "conv-1"});
    let accepted: Value =
        app.post("/sync", json!({"request_id": "cur-1", "runtime": scope})).await.json().await.unwrap();
    let mut sse = app.events_with("", accepted["cursor"].as_str()).await;
    let first = sse.next().await;
    assert_eq!(first.event, "update_loop_status", "the first event after acceptance is the runtime's answer");
    let reply = sse.next_of("sync_response").await;
    assert_eq!((reply.event.as_str(), reply.data["request_id"].as_str()), ("sync_response", Some("cur-1")));
}

#[tokio::test]
async fn waiting_on_a_command_the_runtime_never_answers_returns_once_it_is_written() {
    // letta-code answers change_device_state with state events only, never
    // by request_id: a wait could only time out, so it is not one.
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let body = scoped(json!({"type": "change_device_state", "payload": {"mode": "default"}}));
    let res = app.post_as(Some(ADMIN_TOKEN), "/commands?wait=true&timeout_ms=60000", body).await;
    assert_eq!(res.status(), 202);
    assert_eq!(rt.next_frame().await["type"], "change_device_state");
}
