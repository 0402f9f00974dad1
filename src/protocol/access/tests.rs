//! What a client token may send, field by field, as every door decides it;
//! and the docs table that states it.

use serde_json::json;

use super::*;

fn decide(frame: Value, role: Role) -> Result<(), Refusal> {
    let frame = frame.as_object().expect("an object").clone();
    let kind = frame["type"].as_str().expect("a type").to_owned();
    authorize(&kind, &frame, &role)
}

fn field(kind: &str, field: &str) -> Result<(), Refusal> {
    Err(Refusal::Field { kind: kind.into(), field: field.into() })
}

fn scope() -> Value {
    json!({"agent_id": "agent-1", "conversation_id": "conv-1"})
}

/// A frame a client may send, and the same frame with one field added
/// that only the admin may set.
fn forbidden_fields() -> Vec<(Value, &'static str)> {
    let message = json!({"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]});
    let mut cases = vec![
        (
            json!({"type": "change_device_state", "runtime": scope(), "payload": {"mode": "unrestricted"}}),
            "payload.mode",
        ),
        (json!({"type": "change_device_state", "runtime": scope(), "payload": {"cwd": "/"}}), "payload.cwd"),
        (json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "mode": "unrestricted"}), "mode"),
        (json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "cwd": "/"}), "cwd"),
        (json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "cwd": null}), "cwd"),
        (
            json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "permission_mode": "x"}),
            "permission_mode",
        ),
        (
            json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "working_directory": "/"}),
            "working_directory",
        ),
        (
            json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c",
                   "workspace_sandbox": {"root": "/", "isolation_root": "/"}}),
            "workspace_sandbox",
        ),
        (
            json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "create_conversation": {}}),
            "create_conversation",
        ),
        (
            json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "execution_settings": {}}),
            "execution_settings",
        ),
        (json!({"type": "sync", "runtime": scope(), "a_future_option": true}), "a_future_option"),
        (
            json!({"type": "sync", "runtime": {"agent_id": "a", "conversation_id": "c", "acting_user_id": "u"}}),
            "runtime.acting_user_id",
        ),
        (json!({"type": "abort_message", "runtime": scope(), "permission_mode": "unrestricted"}), "permission_mode"),
        (json!({"type": "conversation_list", "cwd": "/"}), "cwd"),
    ];
    let mut with = |extra: (&str, Value), path: &'static str| {
        let mut payload = message.clone();
        payload[extra.0] = extra.1;
        cases.push((json!({"type": "input", "runtime": scope(), "payload": payload}), path));
    };
    with(("permission_mode", json!("unrestricted")), "payload.permission_mode");
    with(("working_directory", json!("/")), "payload.working_directory");
    with(("client_preferences", json!({"auto_approve": true})), "payload.client_preferences.auto_approve");
    let approval = json!({"type": "input", "runtime": scope(), "payload": {"kind": "approval_response",
        "request_id": "perm-1", "decision": {"behavior": "allow", "always_allow_everything": true}}});
    cases.push((approval, "payload.decision.always_allow_everything"));
    cases
}

#[test]
fn each_field_outside_the_allow_list_is_refused_to_a_client_and_allowed_to_the_admin() {
    for (frame, path) in forbidden_fields() {
        let kind = frame["type"].as_str().unwrap().to_owned();
        assert_eq!(decide(frame.clone(), Role::Client), field(&kind, path), "{frame}");
        assert_eq!(decide(frame.clone(), Role::Admin), Ok(()), "{frame}");
    }
}

#[test]
fn the_refusal_names_the_command_and_the_fields_path() {
    let frame = json!({"type": "change_device_state", "runtime": scope(), "payload": {"mode": "unrestricted"}});
    let refusal = decide(frame, Role::Client).unwrap_err();
    assert_eq!(refusal.to_string(), "`change_device_state` with `payload.mode` needs the admin token");
}

#[test]
fn what_letta_clients_send_passes_for_a_client() {
    let allowed = [
        json!({"type": "input", "request_id": "input-1", "runtime": scope(),
               "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi", "client_message_id": "m"}],
                           "image_failure_mode": "drop", "client_tool_allowlist": [], "client_toolset": {"base": "auto"},
                           "external_tool_scope_ids": ["s"], "exclude_interactive_tools": true}}),
        json!({"type": "input", "runtime": {"agent_id": null, "conversation_id": "c"},
               "payload": {"kind": "approval_response", "request_id": "perm-1",
                           "decision": {"behavior": "allow", "message": "ok", "updated_input": {"x": 1},
                                        "selected_permission_suggestion_ids": ["save-default"]}}}),
        json!({"type": "input", "runtime": scope(), "payload": {"kind": "approval_response", "request_id": "perm-1", "error": "no"}}),
        json!({"type": "sync", "request_id": "sync-1", "runtime": scope(), "recover_approvals": true, "force_device_status": true}),
        json!({"type": "abort_message", "runtime": scope(), "run_id": null}),
        json!({"type": "change_device_state", "runtime": scope(), "payload": {"agent_id": "a", "conversation_id": null}}),
        // AppServerClient.runtimeStart as tests/clients/run.mjs resumes a conversation.
        json!({"type": "runtime_start", "request_id": "runtime-start-1", "agent_id": "a", "conversation_id": "c",
               "recover_approvals": false, "force_device_status": true,
               "client_info": {"name": "letta-bridge-live-test", "title": "t"}}),
        json!({"type": "runtime_start", "agent_id": "a", "conversation_id": "c", "wait_for_replay": true,
               "external_tools": [], "skill_sources": ["bundled"], "preserve_skill_sources": true,
               "conversation_source_tags": ["x"]}),
        json!({"type": "app_server_info", "request_id": "app-server-info-1"}),
        json!({"type": "external_tool_call_response", "request_id": "tool-1", "result": {"content": []}}),
        json!({"type": "external_tool_call_response", "request_id": "tool-1", "error": "failed"}),
        json!({"type": "runtime_external_tools_update", "request_id": "u", "updates": []}),
        json!({"type": "conversation_list", "request_id": "l", "query": {"limit": 10}}),
        json!({"type": "conversation_retrieve", "conversation_id": "c"}),
        json!({"type": "conversation_messages_list", "conversation_id": "c", "query": {}}),
        json!({"type": "list_models", "force": true}),
    ];
    for frame in allowed {
        assert_eq!(decide(frame.clone(), Role::Client), Ok(()), "{frame}");
    }
}

/// Newer runtimes (PROTOCOL.md §9) take a turn's toolset preferences and
/// how an abort settles: choices about the conversation, not the device.
#[test]
fn the_conversation_options_of_newer_runtimes_pass_for_a_client() {
    let message = json!({"kind": "create_message", "messages": [{"role": "user", "content": "hi"}],
                         "client_preferences": {"toolset": {"include": ["web_search"]}}});
    let allowed = [
        json!({"type": "input", "runtime": scope(), "payload": message}),
        json!({"type": "abort_message", "runtime": scope(), "wait_for_settlement": true, "pause_queue": false}),
    ];
    for frame in allowed {
        assert_eq!(decide(frame.clone(), Role::Client), Ok(()), "{frame}");
    }
}

#[test]
fn other_command_types_and_payload_kinds_need_the_admin_token() {
    for kind in [
        "read_file",
        "write_file",
        "terminal_spawn",
        "secret_apply",
        "list_memory",
        "approval_response",
        "anything_new",
    ] {
        let frame = json!({"type": kind});
        assert_eq!(decide(frame.clone(), Role::Client), Err(Refusal::Command { kind: kind.into() }));
        assert_eq!(decide(frame, Role::Admin), Ok(()));
    }
    for payload in [json!({"kind": "teleport_continue"}), json!({"messages": []})] {
        let frame = json!({"type": "input", "runtime": scope(), "payload": payload});
        let refusal = decide(frame.clone(), Role::Client).unwrap_err();
        assert!(matches!(&refusal, Refusal::Variant { field, .. } if field == "payload.kind"), "{refusal:?}");
        assert_eq!(decide(frame, Role::Admin), Ok(()));
    }
}

#[test]
fn only_a_runtime_start_that_names_both_ids_is_open_to_a_client() {
    for frame in [
        json!({"type": "runtime_start", "create_agent": {}, "create_conversation": {}}),
        json!({"type": "runtime_start", "agent_id": "a", "create_conversation": {}}),
        json!({"type": "runtime_start", "agent_id": "a"}),
        json!({"type": "runtime_start", "agent_id": "a", "conversation_id": ""}),
    ] {
        assert_eq!(decide(frame.clone(), Role::Client), Err(Refusal::NotResume), "{frame}");
        assert_eq!(decide(frame, Role::Admin), Ok(()));
    }
}

#[test]
fn principals_are_named_by_role() {
    assert_eq!((&*Role::Client.principal(), &*Role::Admin.principal()), ("client", "admin"));
}

/// docs/api.md's table says exactly what [`CLIENT_COMMANDS`] allows.
#[test]
fn the_api_docs_table_lists_every_command_and_field_a_client_may_send() {
    let docs = include_str!("../../../docs/api.md");
    let start = docs.find("### What a client token may send").expect("the section");
    let rows: Vec<&str> =
        docs[start..].lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).skip(2).collect();
    let kind_of = |row: &str| row.split('`').nth(1).unwrap_or_default().to_owned();
    let documented: Vec<String> = rows.iter().map(|r| kind_of(r)).collect();
    let allowed: Vec<&str> = CLIENT_COMMANDS.iter().map(|(k, _)| *k).collect();
    assert_eq!(documented, allowed, "one row per command, in the order of CLIENT_COMMANDS");
    fn names(fields: Fields, out: &mut Vec<&'static str>) {
        for (name, shape) in fields {
            out.push(name);
            match shape {
                Shape::Any => {}
                Shape::Object(inner) => names(inner, out),
                Shape::Kinds(kinds) => {
                    for (kind, inner) in *kinds {
                        out.push(kind);
                        names(inner, out);
                    }
                }
            }
        }
    }
    for ((kind, fields), row) in CLIENT_COMMANDS.iter().zip(&rows) {
        let mut all = Vec::new();
        names(fields, &mut all);
        for name in all {
            assert!(row.contains(&format!("`{name}`")), "the row of `{kind}` lacks `{name}`: {row}");
        }
    }
}
