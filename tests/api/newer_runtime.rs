//! A runtime newer than the recorded 0.32.18, played from the hand-made
//! fixtures `newer/*` (tests/fixtures/synthetic-newer/: the recording plus
//! the fields newer runtimes add, PROTOCOL.md §9): unknown fields and event
//! types pass through every path untouched, `?wait=completion` finds its
//! turn by the `client_message_ids` the runtime names, and a failure the
//! runtime reports rides on the answer (`Retry-After` when retryable).

use serde_json::{Value, json};

use crate::helpers::*;

fn scope() -> Value {
    json!({"agent_id": "agent-1", "conversation_id": "conv-1"})
}

/// An input of one message; `id`: its `client_message_id`, if the client gives one.
fn message(text: &str, id: Option<&str>) -> Value {
    let mut message = json!({"role": "user", "content": text});
    if let Some(id) = id {
        message["client_message_id"] = id.into();
    }
    json!({"runtime": scope(), "payload": {"kind": "create_message", "messages": [message]}})
}

#[tokio::test]
async fn unknown_fields_and_event_types_pass_through_sse_a_client_socket_and_the_turn_result() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let mut events = app.events("").await;
    let mut socket = app.app_server().await;
    let mut body = message("hi", None);
    body["payload"]["client_preferences"] = json!({"toolset": {"include": ["web_search"]}});
    let pending = app.post_in_background("/input?wait=completion", body);

    let frame = rt.next_frame().await;
    assert_eq!(frame["payload"]["client_preferences"], json!({"toolset": {"include": ["web_search"]}}), "as sent");
    let generated = frame["payload"]["messages"][0]["client_message_id"].clone();
    rt.play("newer/turn", 0, &frame);

    let unknown = events.next_of("synthetic_unknown_event").await;
    let expected = json!({"nested": [{"deep": {"deeper": true}}], "text": "unknown to the bridge"});
    assert_eq!(unknown.data["synthetic_payload"], expected);
    let on_socket = socket.next_of("synthetic_unknown_event").await;
    let mut without_runtime_id = unknown.data.clone();
    without_runtime_id.as_object_mut().unwrap().remove("runtime_id");
    assert_eq!(on_socket, without_runtime_id, "the frame as the runtime sent it");
    let accepted = events.seen.iter().find(|e| e.event == "input_accepted").expect("input_accepted").data.clone();
    assert_eq!(accepted["synthetic_unknown_field"], json!({"kept": true, "list": [1, "two", null]}));

    let res = pending.await.unwrap();
    assert_eq!(res.status(), 200);
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["text"], "Hello from the scripted model.");
    assert_eq!(turn["turn_finished"]["client_message_ids"], json!([generated]), "the runtime's fields, kept");
    assert!(turn.get("failure").is_none(), "no failure reported: none in the answer");
    let ids: Vec<String> = serde_json::from_value(turn["event_ids"].clone()).unwrap();
    assert!(ids.contains(&unknown.id), "the unknown event is one of the turn's");
}

#[tokio::test]
async fn a_wait_true_reply_keeps_the_fields_a_newer_runtime_adds() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let body = json!({"runtime": scope(), "wait_for_settlement": true, "pause_queue": false});
    let pending = app.post_in_background("/abort?wait=true", body);
    let frame = rt.next_frame().await;
    assert_eq!((&frame["wait_for_settlement"], &frame["pause_queue"]), (&json!(true), &json!(false)), "{frame}");
    rt.play("newer/abort", 0, &frame);

    let res = pending.await.unwrap();
    assert_eq!(res.status(), 200, "a client may send the abort's options");
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["type"], "abort_message_response");
    assert_eq!(
        (&reply["outcome"], &reply["lease_settled"], &reply["queue_paused"]),
        (&json!("not_applicable"), &json!(true), &json!(false))
    );
}

#[tokio::test]
async fn two_queued_inputs_run_as_one_turn_each_get_that_turn_by_their_client_message_ids() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let res = app.post("/input", message("A", Some("cm-synthetic-a"))).await;
    assert_eq!(res.status(), 202);
    let a = rt.next_frame().await;
    rt.play("newer/queued_batch", 0, &a);
    let b = app.post_in_background("/input?wait=completion&timeout_ms=3000", message("B", Some("cm-synthetic-b")));
    let frame = rt.next_frame().await;
    rt.play("newer/queued_batch", 1, &frame);
    let c = app.post_in_background("/input?wait=completion&timeout_ms=3000", message("C", Some("cm-synthetic-c")));
    let frame = rt.next_frame().await;
    // A ends, then B and C run as one turn: only B's id is echoed as the
    // user message's otid; the turn_finished names both.
    rt.play("newer/queued_batch", 2, &frame);

    for (name, pending) in [("B", b), ("C", c)] {
        let res = pending.await.unwrap();
        assert_eq!(res.status(), 200, "{name}");
        let turn: Value = res.json().await.unwrap();
        assert_eq!(turn["disposition"], "queued", "{name}");
        assert_eq!(turn["text"], "One answer for both.", "{name}: the batch's turn, not A's");
        assert_eq!(turn["run_id"], "local-run-2", "{name}");
    }
}

#[tokio::test]
async fn a_retryable_failure_is_a_502_carrying_it_with_retry_after() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    rt.quiet();
    let pending = app.post_in_background("/input?wait=completion", message("hi", None));
    let frame = rt.next_frame().await;
    let generated = frame["payload"]["messages"][0]["client_message_id"].clone();
    rt.play("newer/turn_failed", 0, &frame);

    let res = pending.await.unwrap();
    // 8 s: the next step of the runtime's own backoff (1, 2, 4 s), see `http::error`.
    assert_eq!(res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("8"));
    let problem = assert_problem(res, 502).await;
    assert_eq!(problem["type"], "urn:letta-bridge:turn-failed");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("429 Too Many Requests") && detail.contains("HTTP 429") && detail.contains("retryable"),
        "{detail}"
    );
    let failure = &problem["turn"]["failure"];
    assert_eq!(
        (&failure["code"], &failure["http_status"], &failure["retryable"]),
        (&json!("rate_limited"), &json!(429), &json!(true))
    );
    assert_eq!(failure["client_message_ids"], json!([generated]));
}

#[tokio::test]
async fn a_failure_that_is_not_retryable_has_no_retry_after() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let pending = app.post_in_background("/input?wait=completion", message("hi", None));
    let frame = rt.next_frame().await;
    let failure = json!({"stage": "model_request", "code": "bad_request", "http_status": 400, "retryable": false,
                         "client_message_ids": [frame["payload"]["messages"][0]["client_message_id"]]});
    rt.emit(
        "update_loop_status",
        "agent-1",
        "conv-1",
        json!({"loop_status": {"status": "WAITING_ON_INPUT", "failure": failure}}),
    );
    rt.emit("turn_finished", "agent-1", "conv-1", json!({"turn_id": "t", "stop_reason": "error", "error": "400"}));

    let res = pending.await.unwrap();
    assert!(res.headers().get("retry-after").is_none());
    let problem = assert_problem(res, 502).await;
    assert_eq!(problem["turn"]["failure"], failure);
}

#[tokio::test]
async fn a_command_type_the_bridge_does_not_know_reaches_the_runtime_as_sent() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-a").await;
    let command = json!({"type": "synthetic_unknown_command", "request_id": "u-1",
                         "synthetic_options": {"nested": [1, {"deep": null}], "flag": true}});
    assert_eq!(app.post_as(Some(ADMIN_TOKEN), "/commands", command.clone()).await.status(), 202);
    assert_eq!(rt.next_frame().await, command);
}
