//! Agent turns offline: an agent and a conversation created through the
//! bridge (`runtime_start`), its model answered by the scripted server.

use std::time::Duration;

use letta_bridge_testkit::SseEvent;
use letta_bridge_testkit::model_server::Reply;
use serde_json::{Value, json};

use crate::harness::{Live, assistant_text, greeting, message};

/// True for an event of `kind` scoped to `scope`'s conversation.
fn in_scope(e: &SseEvent, kind: &str, scope: &Value) -> bool {
    e.event == kind
        && e.data["runtime"]["agent_id"] == scope["agent_id"]
        && e.data["runtime"]["conversation_id"] == scope["conversation_id"]
}

/// Starts a turn whose reply streams slowly (40 pieces, 250 ms apart) and
/// returns once its first assistant delta arrived: the turn is running.
async fn start_slow_turn(live: &mut Live, scope: &Value) {
    live.model.set_reply(Reply::new(["slow "; 40]).with_delay(Duration::from_millis(250)));
    assert_eq!(live.bridge.post("/input", &message(scope, "take your time")).await.status(), 202);
    live.events
        .next_matching("an assistant delta", |e| {
            in_scope(e, "stream_delta", scope) && e.data["delta"]["message_type"] == "assistant_message"
        })
        .await;
}

#[tokio::test]
async fn a_message_runs_a_real_turn_whose_deltas_reassemble_the_scripted_reply() {
    let Some(mut live) = Live::start("real_turn").await else { return };
    let scope = live.create_agent().await;

    let res = live.bridge.post("/input", &message(&scope, "hi")).await;
    assert_eq!(res.status(), 202);
    let request_id = res.json::<Value>().await.unwrap()["request_id"].as_str().unwrap().to_owned();

    let accepted = live.events.next_matching("input_accepted", |e| e.data["request_id"] == request_id.as_str()).await;
    assert_eq!(accepted.data["accepted"], true, "{}", accepted.data);
    assert_eq!(accepted.data["disposition"], "started", "{}", accepted.data);
    let from = live.events.seen.len();
    let finished = live.events.next_matching("turn_finished", |e| in_scope(e, "turn_finished", &scope)).await;
    assert_eq!(finished.data["stop_reason"], "end_turn", "{}", finished.data);

    let turn = &live.events.seen[from..];
    let run_id = finished.data["run_id"].as_str();
    assert_eq!(assistant_text(turn, run_id), greeting().text(), "events: {}", live.events.summary());
    assert!(
        turn.iter().any(|e| e.event == "stream_delta" && e.data["delta"]["stop_reason"] == "end_turn"),
        "a stop_reason delta precedes turn_finished"
    );
    let chats = live.model.chat_requests();
    assert_eq!(chats.len(), 1, "one model call for one turn");
    assert_eq!(chats[0].body["stream"], true);
    assert!(chats[0].body["messages"].to_string().contains("hi"), "the user message reached the model");
}

#[tokio::test]
async fn abort_during_a_slow_reply_cancels_the_turn() {
    let Some(mut live) = Live::start("abort").await else { return };
    let scope = live.create_agent().await;
    start_slow_turn(&mut live, &scope).await;

    let res = live.bridge.post("/abort?wait=true&timeout_ms=15000", &json!({"runtime": scope})).await;
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["type"], "abort_message_response", "{reply}");
    assert_eq!(reply["aborted"], true, "{reply}");
    assert_eq!(reply["success"], true, "{reply}");

    let finished = live.events.next_matching("turn_finished", |e| in_scope(e, "turn_finished", &scope)).await;
    assert_eq!(finished.data["stop_reason"], "cancelled", "{}", finished.data);
    assert!(
        live.events.seen.iter().any(|e| e.event == "abort_message_response"),
        "the abort reply also reached the subscriber"
    );
}

#[tokio::test]
async fn a_turn_for_an_unknown_agent_ends_in_the_runtimes_own_error() {
    let Some(mut live) = Live::start("unknown_agent").await else { return };
    let scope = json!({"agent_id": "agent-does-not-exist", "conversation_id": "default"});

    let res = live.bridge.post("/input?wait=true&timeout_ms=15000", &message(&scope, "hello?")).await;
    assert_eq!(res.status(), 200, "the runtime still accepts the input");
    let accepted: Value = res.json().await.unwrap();
    assert_eq!(accepted["type"], "input_accepted", "{accepted}");

    let finished = live.events.next_matching("turn_finished", |e| in_scope(e, "turn_finished", &scope)).await;
    assert_eq!(finished.data["stop_reason"], "error", "{}", finished.data);
    let error = finished.data["error"].as_str().unwrap_or_default();
    assert!(error.contains("agent-does-not-exist"), "the error names the agent: {}", finished.data);
    // The runtime sends its loop_error delta right after turn_finished.
    let loop_error =
        |e: &SseEvent| in_scope(e, "stream_delta", &scope) && e.data["delta"]["message_type"] == "loop_error";
    let delta = match live.events.seen.iter().find(|e| loop_error(e)) {
        Some(e) => e.clone(),
        None => live.events.next_matching("a loop_error delta", loop_error).await,
    };
    assert_eq!(delta.data["delta"]["message"], finished.data["error"], "{}", delta.data);
    assert!(live.model.chat_requests().is_empty(), "no model call for an unknown agent");
}

#[tokio::test]
async fn input_wait_completion_answers_with_the_finished_turn() {
    let Some(mut live) = Live::start("wait_completion").await else { return };
    let scope = live.create_agent().await;

    let res = live.bridge.post("/input?wait=completion&timeout_ms=30000", &message(&scope, "hi")).await;
    assert_eq!(res.status(), 200, "{:?}", res.headers());
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["text"], greeting().text(), "{turn}");
    assert_eq!(turn["stop_reason"], "end_turn", "{turn}");
    assert_eq!(turn["turn_finished"]["type"], "turn_finished", "{turn}");
    assert_eq!(turn["runtime_id"], live.runtime_id.as_str(), "{turn}");
    assert_eq!(turn["agent_id"], scope["agent_id"], "{turn}");
    assert_eq!(turn["conversation_id"], scope["conversation_id"], "{turn}");
    assert_eq!(turn["disposition"], "started", "{turn}");
    assert!(turn["error"].is_null(), "{turn}");
    assert!(turn["run_id"].is_string(), "{turn}");

    // The event ids are the SSE ids of this turn's events, in order.
    let ids: Vec<&str> = turn["event_ids"].as_array().expect("event_ids").iter().map(|v| v.as_str().unwrap()).collect();
    let finished = live.events.next_matching("turn_finished", |e| in_scope(e, "turn_finished", &scope)).await;
    assert_eq!(ids.last().copied(), Some(finished.id.as_str()), "the last id is turn_finished's");
    let first = live.events.seen.iter().find(|e| e.id == ids[0]).expect("the first id is on the stream");
    assert_eq!(first.event, "input_accepted", "the turn's events start with input_accepted");
    assert_eq!(first.data["request_id"], turn["request_id"]);
    let on_stream: Vec<&str> = live.events.seen.iter().map(|e| e.id.as_str()).collect();
    let mut at = 0;
    for id in &ids {
        at += on_stream[at..]
            .iter()
            .position(|s| s == id)
            .unwrap_or_else(|| panic!("{id} is not on the stream in order"));
    }
    let deltas = live
        .events
        .seen
        .iter()
        .filter(|e| ids.contains(&e.id.as_str()) && e.data["delta"]["message_type"] == "assistant_message")
        .count();
    assert_eq!(deltas, greeting().pieces.len(), "every assistant delta is among the ids");
}

#[tokio::test]
async fn input_wait_completion_for_an_unknown_agent_is_a_turn_failed_502() {
    let Some(live) = Live::start("wait_completion_error").await else { return };
    let scope = json!({"agent_id": "agent-does-not-exist", "conversation_id": "default"});

    let started = std::time::Instant::now();
    let res = live.bridge.post("/input?wait=completion&timeout_ms=30000", &message(&scope, "hello?")).await;
    assert_eq!(res.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(15), "answered when the turn failed, not at the timeout");
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["type"], "urn:letta-bridge:turn-failed", "{problem}");
    assert_eq!(problem["status"], 502, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("agent-does-not-exist"), "{problem}");
    assert_eq!(problem["turn"]["stop_reason"], "error", "{problem}");
    assert_eq!(problem["turn"]["agent_id"], "agent-does-not-exist", "{problem}");
}

#[tokio::test]
async fn a_turn_on_a_model_the_server_does_not_list_ends_in_an_error() {
    let Some(live) = Live::start("unlisted_model").await else { return };
    let scope = live.create_agent_on("lmstudio/not-listed").await;

    let res = live.bridge.post("/input?wait=completion&timeout_ms=30000", &message(&scope, "hi")).await;
    let status = res.status();
    let problem: Value = res.json().await.unwrap();
    assert_eq!(status, 502, "{problem}");
    assert_eq!(problem["type"], "urn:letta-bridge:turn-failed", "{problem}");
    assert_eq!(problem["turn"]["stop_reason"], "error", "{problem}");
    // The runtime's error here is a JSON document in a string (an llm_error).
    let error = problem["turn"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("Unknown model") && error.contains("not-listed"), "{error}");
    assert!(live.model.requests().iter().any(|r| r.uri == "/v1/models"), "the runtime asked for the models");
    assert!(live.model.chat_requests().is_empty(), "and did not call an unlisted one");
}

#[tokio::test]
async fn a_queued_input_after_an_abort_waits_for_and_answers_with_its_own_turn() {
    let Some(mut live) = Live::start("queued_completion").await else { return };
    let scope = live.create_agent().await;
    start_slow_turn(&mut live, &scope).await;
    let res = live.bridge.post("/abort?wait=true&timeout_ms=15000", &json!({"runtime": scope})).await;
    assert_eq!(res.status(), 200);

    // The runtime queues the next input behind the aborted turn's wind-down
    // (recorded: turn_after_abort); the answer must be the new turn only.
    live.model.set_reply(greeting());
    let res = live.bridge.post("/input?wait=completion&timeout_ms=30000", &message(&scope, "again")).await;
    let status = res.status();
    let turn: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{turn}");
    assert_eq!(turn["text"], greeting().text(), "{turn}");
    assert_eq!(turn["stop_reason"], "end_turn", "{turn}");
    assert!(matches!(turn["disposition"].as_str(), Some("queued" | "started")), "{turn}");
    eprintln!("disposition after an abort: {}", turn["disposition"]);
}

#[tokio::test]
async fn a_command_sent_the_moment_the_runtime_connects_still_gets_its_whole_turn() {
    // The runtime sets up its side of a new connection just after the
    // upgrade; an input that reached it earlier got input_accepted but never
    // its turn_finished (recorded: first_command_at_once). The bridge holds
    // commands until the runtime's first pong, so this one is answered.
    let scope = json!({"agent_id": "agent-does-not-exist", "conversation_id": "default"});
    let path = "/input?wait=completion&timeout_ms=15000";
    let Some((_live, res)) = Live::start_racing("first_command", path, &message(&scope, "first")).await else { return };
    let status = res.status();
    let problem: Value = res.json().await.unwrap();
    assert_eq!(status, 502, "the whole turn came back, not a timeout: {problem}");
    assert_eq!(problem["type"], "urn:letta-bridge:turn-failed", "{problem}");
    assert_eq!(problem["turn"]["stop_reason"], "error", "{problem}");
}
