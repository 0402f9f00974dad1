//! What the real runtime sent, recorded by `tests/record` into
//! `tests/fixtures/letta-code-<version>/`: parsed once, and replayed with the
//! live command's values (request id, runtime scope, path, …) in place of the
//! recorded ones and fresh envelopes (`event_seq`, `emitted_at`,
//! `idempotency_key`) in place of the placeholders.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The runtime version the fixtures were recorded from.
pub const RUNTIME_VERSION: &str = "0.32.18";

macro_rules! fixture_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../fixtures/letta-code-0.32.18/", $name, ".json")))),*]
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
    "invalid_input",
    "unknown_command",
    "change_device_state",
    "list_in_directory",
    "server_ping",
    "reconnect_after_1001",
    "reregister_after_1008",
    "replaced_1000",
    "first_command_at_once",
];

/// The exchanges made of command steps (`steps: [{send, frames}]`), in
/// file order: every fixture with at least one step.
pub fn exchanges() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _)| *name).filter(|name| fixture(name)["steps"].as_array().is_some_and(|s| !s.is_empty()))
}

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

/// The runtime's own test for a runtime scope (`isRuntimeScope` in
/// letta-code): `conversation_id` a non-empty string, `agent_id` null or a
/// non-empty string. Frames whose scope fails it are dropped unanswered
/// (fixture `sync_without_runtime`).
pub fn is_runtime_scope(v: &Value) -> bool {
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    let agent = v.get("agent_id");
    non_empty(&v["conversation_id"]) && (agent == Some(&Value::Null) || agent.is_some_and(non_empty))
}

/// Step `i` of `name` as an answer to `command`: the recorded frames with
/// the live command's values in place of the recorded command's, and
/// `next_seq` numbering the events.
pub fn replay(name: &str, i: usize, command: &Value, next_seq: &dyn Fn() -> u64) -> Vec<Value> {
    replay_where(name, i, command, next_seq, |_| true)
}

/// [`replay`] of the recorded frames `keep` selects.
pub fn replay_where(
    name: &str,
    i: usize,
    command: &Value,
    next_seq: &dyn Fn() -> u64,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let subst = Substitution::new(recorded_command(name, i), command);
    recorded_frames(name, i).iter().filter(|f| keep(f)).map(|f| subst.frame(f, next_seq)).collect()
}

/// A recorded value (a command, a request body) with stand-ins for its
/// placeholders, as [`replay`] puts them in.
pub fn realise(v: &Value) -> Value {
    Substitution::new(&Value::Null, &Value::Null).value(v)
}

/// The registration body the runtime sent (fixture `register`), for `device`.
pub fn registration_body(device: &str, connection_name: &str) -> Value {
    let requests = fixture("register")["requests"].as_array().expect("register.requests");
    let register = requests.iter().find(|r| r["path"] == "/v1/environments/register").expect("a registration");
    let mut body = realise(&register["body"]);
    body["deviceId"] = device.into();
    body["connectionName"] = connection_name.into();
    body
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

/// Recorded values to live ones.
struct Substitution {
    /// Whole-string replacements (request id, path, …).
    whole: Vec<(String, Option<String>)>,
    /// Substring replacements (agent and conversation ids, placeholders).
    parts: Vec<(String, String)>,
}

impl Substitution {
    fn new(recorded: &Value, live: &Value) -> Self {
        let mut whole = Vec::new();
        if let (Some(rec), Some(live)) = (recorded.as_object(), live.as_object()) {
            for (k, v) in rec {
                let Some(v) = v.as_str() else { continue };
                if k == "type" {
                    continue;
                }
                // A field the live command lacks disappears from the answer
                // (the runtime echoes `request_id` only when given one).
                whole.push((v.to_owned(), live.get(k).and_then(Value::as_str).map(str::to_owned)));
            }
        }
        let scope = |key: &str, default: &str| {
            live["runtime"][key]
                .as_str()
                .or_else(|| live[key].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| default.to_owned())
        };
        let mut parts = Vec::new();
        for (key, placeholder, default) in
            [("agent_id", "<agent-id>", AGENT), ("conversation_id", "<conversation-id>", CONVERSATION)]
        {
            let value = scope(key, default);
            if let Some(rec) = recorded["runtime"][key].as_str().filter(|r| *r != placeholder) {
                parts.push((rec.to_owned(), value.clone()));
            }
            parts.push((placeholder.to_owned(), value));
        }
        for (placeholder, value) in [
            ("<home>", "/home/runtime"),
            ("<tmp>", "/tmp/runtime"),
            ("<runtime-package>", "/opt/letta-code/package"),
            ("<device-id>", DEVICE),
            ("<listener-instance-id>", "00000000-0000-4000-a000-000000000002"),
            ("<os>", "linux"),
            ("<nodeVersion>", "v22.23.3"),
        ] {
            parts.push((placeholder.to_owned(), value.to_owned()));
        }
        Self { whole, parts }
    }

    fn frame(&self, frame: &Value, next_seq: &dyn Fn() -> u64) -> Value {
        let mut out = self.value(frame);
        if let Some(obj) = out.as_object_mut()
            && obj.get("event_seq").is_some_and(|s| s == "<event-seq>")
        {
            let seq = next_seq();
            obj.insert("event_seq".into(), seq.into());
            if let Some(Value::String(key)) = obj.get_mut("idempotency_key") {
                *key = key.replace("<event-seq>", &seq.to_string());
            }
        }
        out
    }

    fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.string(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    if let Value::String(s) = v
                        && self.whole.iter().any(|(rec, live)| rec == s && live.is_none())
                    {
                        continue;
                    }
                    out.insert(k.clone(), self.value(v));
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn string(&self, s: &str) -> String {
        if let Some((_, Some(live))) = self.whole.iter().find(|(rec, _)| rec == s) {
            return live.clone();
        }
        if is_timestamp_mask(s) {
            return s
                .chars()
                .zip(TIMESTAMP.chars().chain(std::iter::repeat('0')))
                .map(|(m, t)| if m == '0' { t } else { m })
                .collect();
        }
        let mut s = s.to_owned();
        for (rec, live) in &self.parts {
            if s.contains(rec.as_str()) {
                s = s.replace(rec.as_str(), live);
            }
        }
        replace_uuid_placeholders(&s)
    }
}

/// `0000-00-00T00:00:00…`: a timestamp the recorder zeroed.
fn is_timestamp_mask(s: &str) -> bool {
    s.len() >= 19 && s.starts_with("0000-00-00") && s.bytes().all(|b| !b.is_ascii_digit() || b == b'0')
}

/// `<uuid-N>` to a stable uuid.
fn replace_uuid_placeholders(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("<uuid-") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 6..];
        match tail.find('>').and_then(|end| Some((tail[..end].parse::<u64>().ok()?, end))) {
            Some((n, end)) => {
                out.push_str(&uuid(n));
                rest = &tail[end + 1..];
            }
            None => {
                out.push_str("<uuid-");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The frames of step `i` of `name` that answer its command by `request_id`.
pub fn recorded_replies(name: &str, i: usize) -> Vec<&'static Value> {
    let id = &recorded_command(name, i)["request_id"];
    recorded_frames(name, i).iter().filter(|f| !id.is_null() && &f["request_id"] == id).collect()
}

/// A JSON type name, for shape comparisons.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The shape of a JSON value: objects by key, arrays by their first item,
/// scalars by type name.
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => json!([items.first().map(shape)]),
        other => json!(type_name(other)),
    }
}
