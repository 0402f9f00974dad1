use super::*;
use serde_json::json;

fn input() -> Map<String, Value> {
    json!({"type": "input", "request_id": "r1", "runtime": {"agent_id": "a", "conversation_id": "c"},
           "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})
    .as_object()
    .unwrap()
    .clone()
}

fn feed(turn: &mut Turn, kind: &str, data: Value) -> Result<Option<TurnResult>, TurnError> {
    let data = data.to_string();
    let seen =
        Seen { kind, runtime_id: Some("rt"), agent_id: Some("a"), conversation_id: Some("c"), data: data.as_bytes() };
    turn.on_event(seen, || format!("e-{kind}"))
}

#[test]
fn a_started_turn_collects_text_until_turn_finished() {
    let mut frame = input();
    let mut turn = Turn::expect(&mut frame, "rt").unwrap();
    assert!(frame["payload"]["messages"][0]["client_message_id"].is_string());
    let accepted = json!({"request_id": "r1", "accepted": true, "disposition": "started"});
    assert!(feed(&mut turn, "input_accepted", accepted).unwrap().is_none());
    let delta = |t: &str| json!({"delta": {"id": "m1", "message_type": "assistant_message", "content": [{"type": "text", "text": t}]}});
    feed(&mut turn, "stream_delta", delta("Hel")).unwrap();
    feed(&mut turn, "stream_delta", delta("lo")).unwrap();
    let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn"})).unwrap().unwrap();
    assert_eq!((done.text.as_str(), done.stop_reason.as_str()), ("Hello", "end_turn"));
    assert_eq!(done.event_ids.len(), 4);
}

#[test]
fn a_queued_turn_starts_with_its_own_user_message() {
    let mut frame = input();
    let mut turn = Turn::expect(&mut frame, "rt").unwrap();
    let otid = frame["payload"]["messages"][0]["client_message_id"].as_str().unwrap().to_owned();
    feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": true, "disposition": "queued"})).unwrap();
    assert!(feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn"})).unwrap().is_none(), "not ours");
    feed(&mut turn, "stream_delta", json!({"delta": {"message_type": "user_message", "otid": otid}})).unwrap();
    let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn"})).unwrap().unwrap();
    assert_eq!(done.disposition.as_deref(), Some("queued"));
}

#[test]
fn refusals_errors_and_offline_runtimes_end_the_turn_with_an_error() {
    let mut turn = Turn::expect(&mut input(), "rt").unwrap();
    let refused = feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": false, "error": "busy"}));
    assert!(matches!(refused, Err(TurnError::Refused { why, .. }) if why == "busy"));
    let mut turn = Turn::expect(&mut input(), "rt").unwrap();
    feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": true})).unwrap();
    let failed = feed(&mut turn, "turn_finished", json!({"stop_reason": "error", "error": "boom"}));
    assert!(matches!(failed, Err(TurnError::Failed(t)) if t.error.as_deref() == Some("boom")));
    let mut turn = Turn::expect(&mut input(), "rt").unwrap();
    assert!(matches!(feed(&mut turn, "runtime_offline", json!({})), Err(TurnError::RuntimeGone(_))));
}

fn approval(decision: Value) -> Map<String, Value> {
    json!({"type": "input", "request_id": "r2", "runtime": {"agent_id": "a", "conversation_id": "c"},
           "payload": {"kind": "approval_response", "request_id": "perm-call-1", "decision": decision}})
    .as_object()
    .unwrap()
    .clone()
}

/// The runtime's approval request for tool call `call-1` (fixture `approval_allow`).
fn control_request() -> Value {
    json!({"type": "control_request", "request_id": "perm-call-1", "agent_id": "a", "conversation_id": "c",
           "request": {"subtype": "can_use_tool", "tool_name": "Bash", "tool_call_id": "call-1",
                       "input": {"command": "touch x"}, "blocked_path": null,
                       "permission_suggestions": [{"id": "save-default", "text": "Yes, and don't ask again"}]}})
}

#[test]
fn a_turn_stops_at_an_approval_request_with_the_request_to_answer() {
    let mut turn = Turn::expect(&mut input(), "rt").unwrap();
    feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": true, "disposition": "started"})).unwrap();
    let call = json!({"message_type": "approval_request_message", "run_id": "run-1",
                      "tool_call": {"tool_call_id": "call-1", "name": "Bash", "arguments": "{}"}});
    feed(&mut turn, "stream_delta", json!({ "delta": call })).unwrap();
    let stop = json!({"message_type": "stop_reason", "stop_reason": "requires_approval", "run_id": "run-1"});
    feed(&mut turn, "stream_delta", json!({ "delta": stop })).unwrap();
    let other = json!({"type": "control_request", "request_id": "x", "request": {"subtype": "other"}});
    assert!(feed(&mut turn, "control_request", other).unwrap().is_none(), "only can_use_tool stops the turn");
    let paused = feed(&mut turn, "control_request", control_request()).unwrap().expect("the turn stops");
    assert_eq!((paused.stop_reason.as_str(), paused.run_id.as_deref()), ("requires_approval", Some("run-1")));
    assert!(paused.turn_finished.is_none());
    let approval = paused.approval.expect("the pending request");
    assert_eq!(approval.request_id, "perm-call-1");
    assert_eq!((approval.tool_name.as_deref(), approval.tool_call_id.as_deref()), (Some("Bash"), Some("call-1")));
    assert_eq!(approval.input, json!({"command": "touch x"}));
    assert_eq!(approval.permission_suggestions[0].id, "save-default");
    assert_eq!(paused.event_ids.len(), 5, "input_accepted through the control_request");
}

#[test]
fn an_approval_is_followed_from_its_acceptance_to_the_end_of_the_turn_it_continues() {
    let mut frame = approval(json!({"behavior": "allow"}));
    let mut turn = Turn::expect(&mut frame, "rt").unwrap();
    let status = json!({"loop_status": {"status": "WAITING_ON_APPROVAL"}});
    feed(&mut turn, "update_loop_status", status).unwrap();
    // The runtime acknowledges an approval without a disposition.
    feed(&mut turn, "input_accepted", json!({"request_id": "r2", "accepted": true})).unwrap();
    let text = json!({"delta": {"id": "m2", "message_type": "assistant_message", "content": [{"type": "text", "text": "Done."}]}});
    feed(&mut turn, "stream_delta", text).unwrap();
    let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "run_id": "run-2"})).unwrap();
    let done = done.expect("the continued turn finished");
    assert_eq!((done.text.as_str(), done.stop_reason.as_str()), ("Done.", "end_turn"));
    assert_eq!(done.disposition, None);
    assert!(done.approval.is_none() && done.turn_finished.is_some());
    assert_eq!(done.event_ids.len(), 4, "the loop status before the acknowledgement counts");
    assert_eq!(done.event_ids[0], "e-update_loop_status");
}

#[test]
fn an_approval_the_runtime_no_longer_waits_for_is_refused_naming_the_request() {
    let mut turn = Turn::expect(&mut approval(json!({"behavior": "allow"})), "rt").unwrap();
    let refused = json!({"request_id": "r2", "accepted": false, "error": "Approval request is no longer pending"});
    let err = feed(&mut turn, "input_accepted", refused).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"perm-call-1\"") && text.contains("no longer pending"), "{text}");
}

#[test]
fn only_inputs_with_an_agent_can_be_followed() {
    let mut sync = json!({"type": "sync"}).as_object().unwrap().clone();
    assert!(matches!(Turn::expect(&mut sync, "rt"), Err(TurnError::NotInput)));
    let mut bare = json!({"type": "input", "runtime": {"conversation_id": "c"}}).as_object().unwrap().clone();
    assert!(matches!(Turn::expect(&mut bare, "rt"), Err(TurnError::NoAgent)));
}

// Runtimes newer than 0.32.18 (PROTOCOL.md §9): turns name their messages.

/// An input with client-given `client_message_id`s.
fn input_with_ids(request_id: &str, ids: &[&str]) -> Map<String, Value> {
    let messages: Vec<Value> =
        ids.iter().map(|id| json!({"role": "user", "content": "hi", "client_message_id": id})).collect();
    json!({"type": "input", "request_id": request_id, "runtime": {"agent_id": "a", "conversation_id": "c"},
           "payload": {"kind": "create_message", "messages": messages}})
    .as_object()
    .unwrap()
    .clone()
}

fn text(t: &str) -> Value {
    json!({"delta": {"id": format!("m-{t}"), "message_type": "assistant_message", "content": [{"type": "text", "text": t}]}})
}

fn queued(turn: &mut Turn, request_id: &str) {
    let accepted = json!({"request_id": request_id, "accepted": true, "disposition": "queued"});
    assert!(feed(turn, "input_accepted", accepted).unwrap().is_none());
}

#[test]
fn a_queued_input_run_together_with_the_one_ahead_is_found_by_the_ids_its_turn_finished_names() {
    let mut turn = Turn::expect(&mut input_with_ids("r-c", &["cm-c"]), "rt").unwrap();
    queued(&mut turn, "r-c");
    feed(&mut turn, "stream_delta", text("answer to A")).unwrap();
    let a_done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "client_message_ids": ["cm-a"]}));
    assert!(a_done.unwrap().is_none(), "the turn ahead is not ours");
    // B and C run as one turn that echoes only B's id (letta-code
    // protocol-outbound.ts: the first payload's otid).
    feed(&mut turn, "stream_delta", json!({"delta": {"message_type": "user_message", "otid": "cm-b"}})).unwrap();
    feed(&mut turn, "stream_delta", text("answer to B and C")).unwrap();
    let done =
        feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "client_message_ids": ["cm-b", "cm-c"]}));
    let done = done.unwrap().expect("the turn that names cm-c is ours");
    assert_eq!(done.text, "answer to B and C");
    assert_eq!(done.event_ids, ["e-input_accepted", "e-stream_delta", "e-stream_delta", "e-turn_finished"]);
}

#[test]
fn a_turn_finished_that_names_other_messages_does_not_end_a_running_turn() {
    let mut turn = Turn::expect(&mut input_with_ids("r-b", &["cm-b"]), "rt").unwrap();
    feed(&mut turn, "input_accepted", json!({"request_id": "r-b", "accepted": true, "disposition": "started"}))
        .unwrap();
    feed(&mut turn, "stream_delta", text("the end of A")).unwrap();
    let a_done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "client_message_ids": ["cm-a"]}));
    assert!(a_done.unwrap().is_none(), "A's turn finished, not ours");
    feed(&mut turn, "stream_delta", text("B")).unwrap();
    let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "client_message_ids": ["cm-b"]}));
    let done = done.unwrap().expect("ours");
    assert_eq!((done.text.as_str(), done.event_ids.len()), ("B", 3), "A's text and events dropped");
}

#[test]
fn a_run_the_loop_status_correlates_decides_whose_turn_finished_it_is() {
    let mut turn = Turn::expect(&mut input_with_ids("r-b", &["cm-b"]), "rt").unwrap();
    queued(&mut turn, "r-b");
    let runs = json!({"loop_status": {"status": "PROCESSING_API_RESPONSE",
                                      "client_message_ids_by_run_id": {"run-a": ["cm-a"], "run-b": ["cm-b"]}}});
    feed(&mut turn, "update_loop_status", runs).unwrap();
    assert!(feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "run_id": "run-a"})).unwrap().is_none());
    feed(&mut turn, "stream_delta", text("B")).unwrap();
    let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "run_id": "run-b"})).unwrap();
    assert_eq!(done.expect("run-b sent cm-b").text, "B");
}

#[test]
fn a_failure_that_names_our_message_is_carried_even_when_the_input_failed_before_its_turn_started() {
    let mut turn = Turn::expect(&mut input_with_ids("r-b", &["cm-b"]), "rt").unwrap();
    queued(&mut turn, "r-b");
    let failure = json!({"stage": "send", "code": "llm_rate_limited", "message": "slow down", "http_status": 429,
                         "retryable": true, "client_message_ids": ["cm-b"]});
    let status = json!({"loop_status": {"status": "WAITING_ON_INPUT", "failure": failure}});
    feed(&mut turn, "update_loop_status", status).unwrap();
    let finished = json!({"stop_reason": "error", "error": "429", "client_message_ids": ["cm-b"]});
    let Err(TurnError::Failed(result)) = feed(&mut turn, "turn_finished", finished) else { panic!("a failed turn") };
    assert_eq!(result.failure.as_ref(), Some(&failure));
    assert!(result.retryable());
    let text = TurnError::Failed(result).to_string();
    assert!(text.contains("\"llm_rate_limited\"") && text.contains("HTTP 429") && text.contains("retryable"), "{text}");
}

#[test]
fn another_turns_failure_is_not_ours() {
    let mut turn = Turn::expect(&mut input_with_ids("r-b", &["cm-b"]), "rt").unwrap();
    queued(&mut turn, "r-b");
    // The turn ahead fails: its failure names no message, then it ends.
    let failure = json!({"loop_status": {"status": "WAITING_ON_INPUT", "failure": {"code": "a_failed"}}});
    feed(&mut turn, "update_loop_status", failure).unwrap();
    feed(&mut turn, "turn_finished", json!({"stop_reason": "error"})).unwrap();
    feed(&mut turn, "stream_delta", json!({"delta": {"message_type": "user_message", "otid": "cm-b"}})).unwrap();
    let named = json!({"loop_status": {"status": "WAITING_ON_INPUT", "failure": {"client_message_ids": ["cm-x"]}}});
    feed(&mut turn, "update_loop_status", named).unwrap();
    let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn"})).unwrap().expect("ours");
    assert!(done.failure.is_none() && !done.retryable(), "{:?}", done.failure);
}
