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
