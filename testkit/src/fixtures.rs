//! What the real runtime sent, recorded by `tests/record` into
//! `tests/fixtures/letta-code-<version>/`: compiled in, parsed once, and
//! looked up by exchange and step, with what the runtime's frames look like.
//! [`crate::replay`] turns a recorded step into the answer to a live command.
//! Beside them, hand-made frames of a runtime newer than the recording
//! (`tests/fixtures/synthetic-newer/`, named `newer/<file>`): synthetic,
//! since no newer runtime can be recorded here (its README says why).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The synthetic fixtures of a newer runtime, by name (`newer/<file>`).
macro_rules! synthetic_files {
    ($($name:literal),* $(,)?) => {
        &[$((concat!("newer/", $name), include_str!(concat!("../../tests/fixtures/synthetic-newer/", $name, ".json")))),*]
    };
}

/// The hand-made fixtures of a runtime newer than [`RUNTIME_VERSION`]
/// (tests/fixtures/synthetic-newer/README.md): the recorded frames plus
/// the fields newer runtimes add, an unknown field and an unknown event
/// type. Not among [`exchanges`]: no runtime sent them.
const SYNTHETIC: &[(&str, &str)] = synthetic_files!["turn", "turn_failed", "queued_batch", "abort"];

/// The runtime version the fixtures were recorded from.
pub const RUNTIME_VERSION: &str = "0.32.18";

macro_rules! fixture_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../tests/fixtures/letta-code-0.32.18/", $name, ".json")))),*]
    };
}

/// Every fixture, by exchange name (one file each).
const FILES: &[(&str, &str)] = fixture_files![
    "register",
    "connect",
    "ping",
    "disconnect",
    "runtime_start",
    "sync",
    "sync_without_runtime",
    "turn",
    "abort",
    "turn_after_abort",
    "abort_idle",
    "unknown_agent",
    "approval_unknown",
    "approval_allow",
    "approval_deny",
    "approval_stale",
    "invalid_input",
    "unknown_command",
    "change_device_state",
    "list_in_directory",
    "server_ping",
    "app_server_info",
    "runtime_start_resume",
    "sync_recover",
    "client_ack",
    "reconnect_after_1001",
    "reregister_after_1008",
    "replaced_1000",
    "first_command_at_once",
];

/// What the fake runtime puts in for the placeholders.
pub const TIMESTAMP: &str = "2026-11-25T12:34:56.789Z";
/// The agent and conversation of replies to commands that name none
/// (`runtime_start` creating them): the shapes the real runtime gives.
pub const AGENT: &str = "agent-local-00000000-0000-4000-8000-000000000001";
pub const CONVERSATION: &str = "local-conv-1";
/// The stand-in for the recorded `deviceId`.
pub const DEVICE: &str = "00000000-0000-4000-a000-000000000001";

fn all() -> &'static HashMap<&'static str, Value> {
    static ALL: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    ALL.get_or_init(|| {
        FILES
            .iter()
            .chain(SYNTHETIC)
            .map(|(name, text)| {
                let v = serde_json::from_str(text).unwrap_or_else(|e| panic!("fixture {name}.json: {e}"));
                (*name, v)
            })
            .collect()
    })
}

/// A whole fixture file.
pub fn fixture(name: &str) -> &'static Value {
    all().get(name).unwrap_or_else(|| panic!("no fixture named {name}"))
}

/// The exchanges made of command steps (`steps: [{send, frames}]`), in
/// file order: every fixture with at least one step.
pub fn exchanges() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _)| *name).filter(|name| step_count(name) > 0)
}

/// How many command steps exchange `name` has.
pub fn step_count(name: &str) -> usize {
    fixture(name)["steps"].as_array().map_or(0, Vec::len)
}

/// Step `i` of an exchange: `{send, frames, http_requests, …}`.
pub fn step(name: &str, i: usize) -> &'static Value {
    &fixture(name)["steps"][i]
}

/// The frames the runtime sent in step `i` of `name`, as recorded (placeholders in).
pub fn recorded_frames(name: &str, i: usize) -> &'static [Value] {
    step(name, i)["frames"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The command sent in step `i` of `name`, as recorded.
pub fn recorded_command(name: &str, i: usize) -> &'static Value {
    &step(name, i)["send"]
}

/// The frames of step `i` of `name` that answer its command by `request_id`.
pub fn recorded_replies(name: &str, i: usize) -> Vec<&'static Value> {
    let id = &recorded_command(name, i)["request_id"];
    recorded_frames(name, i).iter().filter(|f| !id.is_null() && &f["request_id"] == id).collect()
}

/// The runtime's own test for a runtime scope (`isRuntimeScope` in
/// letta-code): `conversation_id` a non-empty string, `agent_id` null or a
/// non-empty string. Frames whose scope fails it are dropped unanswered
/// (fixture `sync_without_runtime`).
pub fn is_runtime_scope(v: &Value) -> bool {
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    let agent = v.get("agent_id");
    non_empty(&v["conversation_id"]) && (agent == Some(&Value::Null) || agent.is_some_and(non_empty))
}

/// An event envelope as the runtime writes it: `event_seq`, `emitted_at`
/// and `idempotency_key` (`<type>:<seq>:<uuid>`, a fresh uuid per event).
pub fn envelope(kind: &str, seq: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("event_seq".into(), seq.into());
    m.insert("emitted_at".into(), TIMESTAMP.into());
    m.insert("idempotency_key".into(), format!("{kind}:{seq}:{}", event_uuid(seq)).into());
    m
}

/// A stable uuid for placeholder `<uuid-n>`.
pub fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The uuid of event `seq`'s idempotency key (apart from placeholder uuids).
fn event_uuid(seq: u64) -> String {
    format!("00000000-0000-4000-9000-{seq:012}")
}
