//! `POST /input?wait=completion`: the request is held until the turn ends and
//! answers with the assembled assistant text, the stop reason and the turn's
//! event ids.

use serde_json::{Value, json};

use crate::helpers::*;

const AGENT: &str = "agent-1";
const CONV: &str = "conv-1";

fn message(text: &str) -> Value {
    json!({
        "runtime": {"agent_id": AGENT, "conversation_id": CONV},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}
    })
}

/// An `assistant_message` piece as the runtime streams it (PROTOCOL.md §5).
fn assistant(rt: &FakeRuntime, conversation: &str, id: &str, text: &str) {
    let delta = json!({"id": id, "message_type": "assistant_message", "content": [{"type": "text", "text": text}], "run_id": "run-1"});
    rt.emit("stream_delta", AGENT, conversation, json!({ "delta": delta }));
}

fn turn_finished(rt: &FakeRuntime, stop_reason: &str, extra: Value) {
    let mut fields = json!({"turn_id": "turn-1", "stop_reason": stop_reason, "run_id": "run-1"});
    fields.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    rt.emit("turn_finished", AGENT, CONV, fields);
}

#[tokio::test]
async fn wait_completion_returns_the_assembled_assistant_text_of_the_turn() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let mut events = app.events("").await;
    let pending = app.post_in_background("/input?wait=completion", message("hi"));
    let frame = rt.next_frame().await;
    assert_eq!(frame["type"], "input");
    let otid =
        frame["payload"]["messages"][0]["client_message_id"].as_str().expect("the bridge adds a client_message_id");
    assert!(otid.starts_with("cm-"));

    rt.emit("update_loop_status", AGENT, CONV, json!({"loop_status": {"status": "PROCESSING_API_RESPONSE"}}));
    assistant(&rt, CONV, "msg-1", "Hel");
    assistant(&rt, "conv-other", "msg-x", "not ours");
    assistant(&rt, CONV, "msg-1", "lo");
    assistant(&rt, CONV, "msg-2", "Bye.");
    turn_finished(&rt, "end_turn", json!({}));

    let res = pending.await.unwrap();
    assert_eq!(res.status(), 200);
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["text"], "Hello\n\nBye.");
    assert_eq!(turn["stop_reason"], "end_turn");
    assert_eq!(turn["run_id"], "run-1");
    assert_eq!(turn["disposition"], "started");
    assert_eq!(turn["request_id"], frame["request_id"]);
    assert_eq!((turn["runtime_id"].as_str(), turn["agent_id"].as_str()), (Some("dev-a"), Some(AGENT)));
    assert_eq!(turn["turn_finished"]["type"], "turn_finished");

    // The event ids are exactly the turn's events on the stream, in order:
    // input_accepted, the loop status, three deltas of this conversation, turn_finished.
    let mut seen = Vec::new();
    loop {
        let e = events.next().await;
        let in_conv = e.data["runtime"]["conversation_id"] == CONV;
        if in_conv || e.event == "input_accepted" {
            seen.push(e.id.clone());
        }
        if e.event == "turn_finished" {
            break;
        }
    }
    let ids: Vec<String> = serde_json::from_value(turn["event_ids"].clone()).unwrap();
    assert_eq!(ids, seen);
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn a_queued_input_is_answered_with_its_own_turn_not_the_one_ahead_of_it() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let pending = app.post_in_background("/input?wait=completion", message("second"));
    let frame = rt.next_frame().await;
    let otid = frame["payload"]["messages"][0]["client_message_id"].clone();
    rt.send(json!({"type": "input_accepted", "request_id": frame["request_id"], "runtime": frame["runtime"],
                   "accepted": true, "disposition": "queued"}));

    // The turn ahead of ours finishes first.
    assistant(&rt, CONV, "msg-ahead", "earlier answer");
    turn_finished(&rt, "end_turn", json!({"run_id": "run-ahead"}));
    // Ours starts with our user message echoed with our client_message_id as otid.
    let user = json!({"id": "user-msg-1", "message_type": "user_message", "content": "second", "otid": otid});
    rt.emit("stream_delta", AGENT, CONV, json!({ "delta": user }));
    assistant(&rt, CONV, "msg-ours", "our answer");
    turn_finished(&rt, "end_turn", json!({"run_id": "run-ours"}));

    let turn: Value = pending.await.unwrap().json().await.unwrap();
    assert_eq!(turn["disposition"], "queued");
    assert_eq!(turn["text"], "our answer");
    assert_eq!(turn["run_id"], "run-ours");
    assert_eq!(turn["event_ids"].as_array().unwrap().len(), 4, "input_accepted, user message, delta, turn_finished");
}

#[tokio::test]
async fn a_turn_that_ends_in_error_is_a_502_problem_carrying_the_turn() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let pending = app.post_in_background("/input?wait=completion", message("hi"));
    rt.next_frame().await;
    turn_finished(&rt, "error", json!({"error": "Agent agent-1 not found"}));

    let problem = assert_problem(pending.await.unwrap(), 502).await;
    assert_eq!(problem["type"], "urn:letta-bridge:turn-failed");
    assert!(problem["detail"].as_str().unwrap().contains("Agent agent-1 not found"), "{problem}");
    assert_eq!(problem["turn"]["stop_reason"], "error");
    assert_eq!(problem["turn"]["error"], "Agent agent-1 not found");
}

#[tokio::test]
async fn an_input_the_runtime_refuses_is_a_409() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let pending = app.post_in_background("/input?wait=completion", message("hi"));
    let frame = rt.next_frame().await;
    rt.send(json!({"type": "input_accepted", "request_id": frame["request_id"], "runtime": frame["runtime"], "accepted": false}));
    let problem = assert_problem(pending.await.unwrap(), 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("did not accept"), "{problem}");
}

#[tokio::test]
async fn a_turn_that_does_not_finish_in_time_is_a_504_naming_the_cursor_to_resume_from() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let pending = app.post_in_background("/input?wait=completion&timeout_ms=300", message("hi"));
    rt.next_frame().await;
    assistant(&rt, CONV, "msg-1", "still thinking");
    let problem = assert_problem(pending.await.unwrap(), 504).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("the turn had not finished") && detail.contains("Last-Event-ID"), "{detail}");
}

#[tokio::test]
async fn a_runtime_dropping_mid_turn_is_a_502_not_a_hang() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let pending = app.post_in_background("/input?wait=completion", message("hi"));
    rt.next_frame().await;
    assistant(&rt, CONV, "msg-1", "partial");
    rt.drop_connection();
    let problem = assert_problem(pending.await.unwrap(), 502).await;
    assert_eq!(problem["type"], "urn:letta-bridge:runtime-disconnected");
}

#[tokio::test]
async fn wait_completion_needs_a_runtime_scope_and_an_input_endpoint() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let unscoped = json!({"payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}});
    let problem = assert_problem(app.post("/input?wait=completion", unscoped).await, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("runtime"), "{problem}");
    assert_problem(app.post("/sync?wait=completion", scoped(json!({}))).await, 400).await;
}

#[tokio::test]
async fn wait_completion_also_follows_an_approval_to_the_end_of_its_turn() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let body = json!({"runtime": {"agent_id": AGENT, "conversation_id": CONV},
                      "payload": {"request_id": "ap-1", "decision": {"behavior": "allow"}}});
    let pending = app.post_in_background("/approval?wait=completion", body);
    let frame = rt.next_frame().await;
    assert_eq!(frame["payload"]["kind"], "approval_response");
    assistant(&rt, CONV, "msg-1", "done");
    turn_finished(&rt, "end_turn", json!({}));
    let turn: Value = pending.await.unwrap().json().await.unwrap();
    assert_eq!((turn["text"].as_str(), turn["stop_reason"].as_str()), (Some("done"), Some("end_turn")));
}
