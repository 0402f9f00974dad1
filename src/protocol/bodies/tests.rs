//! The typed bodies become the frames the runtime reads, unknown fields kept.

use super::*;
use serde_json::json;

fn scope() -> Value {
    json!({"agent_id": "a", "conversation_id": "c"})
}

fn input(v: Value) -> InputCommand {
    serde_json::from_value(v).unwrap()
}

fn frame(c: Command) -> Value {
    serde_json::from_str(&c.to_text()).unwrap()
}

#[test]
fn conversation_commands_need_both_ids_of_their_scope() {
    let body = |runtime: Value| json!({"runtime": runtime, "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}});
    assert!(serde_json::from_value::<InputCommand>(body(json!({"agent_id": "a"}))).is_err());
    assert!(serde_json::from_value::<SyncCommand>(json!({})).is_err());
    let empty = input(body(json!({"agent_id": "a", "conversation_id": ""})));
    assert!(matches!(typed_command(&empty), Err(CommandError::Invalid(_))));
    let sync: SyncCommand =
        serde_json::from_value(json!({"runtime": {"agent_id": "", "conversation_id": "c"}})).unwrap();
    assert!(matches!(typed_command(&sync), Err(CommandError::Invalid(_))));
}

#[test]
fn input_frame_gets_type_request_id_and_keeps_unknown_fields() {
    let cmd = input(json!({
        "runtime": {"agent_id": "a", "conversation_id": "c", "z": 1},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi", "m": 2}], "p": 3},
        "future_field": true
    }));
    let f = frame(typed_command(&cmd).unwrap());
    assert_eq!(f["type"], "input");
    assert!(f["request_id"].as_str().unwrap().starts_with("req-"));
    assert_eq!(f["future_field"], true);
    assert_eq!(f["runtime"]["z"], 1);
    assert_eq!(f["payload"]["p"], 3);
    assert_eq!(f["payload"]["kind"], "create_message");
    assert_eq!(f["payload"]["messages"][0]["m"], 2);
}

#[test]
fn a_given_request_id_is_kept_and_a_wrong_type_refused() {
    let cmd = input(
        json!({"request_id": "mine", "runtime": scope(), "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}}),
    );
    assert_eq!(typed_command(&cmd).unwrap().request_id(), "mine");
    let cmd = input(
        json!({"type": "sync", "runtime": scope(), "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}}),
    );
    assert!(matches!(typed_command(&cmd), Err(CommandError::WrongType { .. })));
}

#[test]
fn empty_messages_and_half_approvals_are_refused() {
    let cmd = input(json!({"runtime": scope(), "payload": {"kind": "create_message", "messages": []}}));
    assert!(matches!(typed_command(&cmd), Err(CommandError::Invalid(_))));
    let a: ApprovalCommand =
        serde_json::from_value(json!({"runtime": scope(), "payload": {"request_id": "ap"}})).unwrap();
    assert!(matches!(typed_command(&a), Err(CommandError::Invalid(_))));
}

#[test]
fn approval_frames_are_inputs_with_an_approval_payload() {
    let a: ApprovalCommand = serde_json::from_value(
        json!({"runtime": scope(), "payload": {"request_id": "ap", "decision": {"behavior": "deny", "message": "no"}}}),
    )
    .unwrap();
    let f = frame(typed_command(&a).unwrap());
    assert_eq!(f["type"], "input");
    assert_eq!(f["payload"]["kind"], "approval_response");
    assert_eq!(f["payload"]["decision"], json!({"behavior": "deny", "message": "no"}));
}
