//! What an end user's token may send and read, as every door decides it.

use serde_json::json;

use super::*;

/// Alice: everything on `conv-a` of `agent-1` on `dev-1`; only `read` on
/// every conversation of `agent-2` on any runtime.
fn alice() -> Grants {
    Grants::from_claim(Some(&json!([
        {"type": "letta-bridge", "actions": ["read", "input", "approve", "abort", "sync"],
         "scopes": [{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"}]},
        {"type": "letta-bridge", "actions": ["read"], "scopes": [{"agent_id": "agent-2", "conversation_id": "*"}]}
    ])))
    .unwrap()
}

fn decide(frame: Value, runtime: &str) -> Result<(), Refusal> {
    let frame = frame.as_object().expect("an object").clone();
    let kind = frame["type"].as_str().expect("a type").to_owned();
    authorize_user(&kind, &frame, &alice(), runtime)
}

fn scope(agent: &str, conversation: &str) -> Value {
    json!({"agent_id": agent, "conversation_id": conversation})
}

fn message(agent: &str, conversation: &str) -> Value {
    json!({"type": "input", "runtime": scope(agent, conversation),
           "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})
}

fn approval(agent: &str, conversation: &str) -> Value {
    json!({"type": "input", "runtime": scope(agent, conversation),
           "payload": {"kind": "approval_response", "request_id": "perm-1", "decision": {"behavior": "allow"}}})
}

fn missing(kind: &str, action: &str) -> impl Fn(&Result<(), Refusal>) -> bool {
    let (kind, action) = (kind.to_owned(), action.to_owned());
    move |r| matches!(r, Err(Refusal::Scope { kind: k, action: a, .. }) if *k == kind && *a == action)
}

#[test]
fn each_conversation_command_needs_its_own_action_on_the_commands_scope() {
    for (frame, action) in [
        (message("agent-1", "conv-a"), "input"),
        (approval("agent-1", "conv-a"), "approve"),
        (json!({"type": "abort_message", "runtime": scope("agent-1", "conv-a")}), "abort"),
        (json!({"type": "sync", "runtime": scope("agent-1", "conv-a")}), "sync"),
    ] {
        let kind = frame["type"].as_str().unwrap().to_owned();
        assert_eq!(decide(frame.clone(), "dev-1"), Ok(()), "{frame}");
        let refused = decide(frame.clone(), "dev-2");
        assert!(missing(&kind, action)(&refused), "another runtime than the scope's: {refused:?}");
        // agent-2 grants only `read`.
        let mut other = frame.clone();
        other["runtime"] = scope("agent-2", "conv-x");
        let refused = decide(other, "dev-1");
        assert!(missing(&kind, action)(&refused), "{refused:?}");
    }
}

#[test]
fn bobs_conversation_is_refused_with_the_missing_action_and_scope_named() {
    let refused = decide(message("agent-1", "conv-bob"), "dev-1").unwrap_err();
    assert_eq!(
        refused.to_string(),
        "`input` needs the `input` action on runtime `dev-1`, agent `agent-1`, conversation `conv-bob`; no grant of this token allows it"
    );
    let default_agent = json!({"type": "sync", "runtime": {"agent_id": null, "conversation_id": "conv-a"}});
    assert!(missing("sync", "sync")(&decide(default_agent, "dev-1")), "the runtime's default agent is nobody's grant");
}

#[test]
fn a_user_never_sends_more_than_a_client_and_never_device_or_privileged_commands() {
    let mut with_mode = message("agent-1", "conv-a");
    with_mode["payload"]["permission_mode"] = json!("unrestricted");
    assert!(matches!(decide(with_mode, "dev-1"), Err(Refusal::Field { .. })));
    for frame in [
        json!({"type": "change_device_state", "runtime": scope("agent-1", "conv-a"), "payload": {"agent_id": "agent-1"}}),
        json!({"type": "conversation_list", "query": {}}),
        json!({"type": "list_models"}),
        json!({"type": "external_tool_call_response", "result": {}}),
        json!({"type": "runtime_external_tools_update", "updates": []}),
        json!({"type": "read_file", "path": "/etc/passwd"}),
        json!({"type": "runtime_start", "create_agent": {}, "create_conversation": {}}),
    ] {
        let refused = decide(frame.clone(), "dev-1");
        assert!(matches!(&refused, Err(Refusal::NotForUsers { .. }) | Err(Refusal::NotResume)), "{frame}: {refused:?}");
    }
    let creates = json!({"type": "runtime_start", "agent_id": "agent-1", "create_conversation": {}});
    assert_eq!(decide(creates, "dev-1"), Err(Refusal::NotResume));
}

#[test]
fn the_reads_of_letta_clients_need_read_on_what_they_read() {
    let resume = |a: &str, c: &str| json!({"type": "runtime_start", "agent_id": a, "conversation_id": c});
    assert_eq!(decide(resume("agent-1", "conv-a"), "dev-1"), Ok(()));
    assert_eq!(decide(resume("agent-2", "any"), "dev-9"), Ok(()), "read on every conversation of agent-2");
    assert!(missing("runtime_start", "read")(&decide(resume("agent-3", "c"), "dev-1")));
    let retrieve = |c: &str| json!({"type": "conversation_retrieve", "conversation_id": c});
    let messages = |c: &str| json!({"type": "conversation_messages_list", "conversation_id": c, "query": {}});
    assert_eq!(decide(retrieve("conv-a"), "dev-1"), Ok(()));
    assert_eq!(decide(messages("conv-a"), "dev-1"), Ok(()));
    assert!(decide(messages("conv-a"), "dev-2").is_err(), "the scope names dev-1");
    assert!(
        decide(retrieve("conv-x"), "dev-1").is_err(),
        "`*` of agent-2 names no conversation: the frame has no agent"
    );
    assert!(decide(retrieve("default"), "dev-1").is_err());
    let info = json!({"type": "app_server_info"});
    assert_eq!(decide(info.clone(), "dev-1"), Ok(()));
    assert_eq!(decide(info.clone(), "dev-7"), Ok(()), "agent-2's scope names no runtime: any");
    let only_dev_1 = Grants::from_claim(Some(&json!([{"type": "letta-bridge", "actions": ["input"],
        "scopes": [{"runtime": "dev-1", "agent_id": "a", "conversation_id": "c"}]}])))
    .unwrap();
    let frame = info.as_object().unwrap();
    assert!(authorize_user("app_server_info", frame, &only_dev_1, "dev-1").is_err(), "no `read`");
}

#[test]
fn a_user_reads_only_the_events_of_its_read_grants_and_its_runtimes_status() {
    let g = alice();
    let event = |kind: &str, runtime: Option<&str>, agent: Option<&str>, conversation: Option<&str>| {
        g.reads_event(kind, runtime, agent, conversation)
    };
    assert!(event("stream_delta", Some("dev-1"), Some("agent-1"), Some("conv-a")));
    assert!(event("stream_delta", Some("dev-5"), Some("agent-2"), Some("conv-z")));
    assert!(!event("stream_delta", Some("dev-1"), Some("agent-1"), Some("conv-bob")));
    assert!(!event("stream_delta", Some("dev-2"), Some("agent-1"), Some("conv-a")));
    assert!(!event("update_device_status", Some("dev-1"), None, None), "device-level");
    assert!(!event("read_file_response", Some("dev-1"), None, None));
    assert!(!event("stream_delta", Some("dev-1"), None, Some("conv-a")), "the default agent is in no grant");
    assert!(!event("stream_delta", None, Some("agent-1"), Some("conv-a")));
    assert!(event("runtime_online", Some("dev-1"), None, None), "a scope names dev-1");
    assert!(event("runtime_offline", Some("dev-1"), None, None));
    assert!(!event("runtime_online", Some("dev-5"), None, None), "agent-2's scope names no runtime");
}
