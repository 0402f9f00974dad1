//! A recorded step replayed as the answer to a live command: the live
//! command's values (request id, runtime scope, path, …) in place of the
//! recorded ones, fresh envelopes (`event_seq`, `emitted_at`,
//! `idempotency_key`) in place of the placeholders, and stand-ins for the
//! rest (tests/fixtures/README.md, "Placeholders").

use serde_json::{Map, Value};

use crate::fixtures::{AGENT, CONVERSATION, DEVICE, TIMESTAMP, fixture, recorded_command, recorded_frames, uuid};

/// Placeholders with one fixed stand-in each.
const STAND_INS: &[(&str, &str)] = &[
    ("<home>", "/home/runtime"),
    ("<tmp>", "/tmp/runtime"),
    ("<runtime-package>", "/opt/letta-code/package"),
    ("<device-id>", DEVICE),
    ("<listener-instance-id>", "00000000-0000-4000-a000-000000000002"),
    ("<os>", "linux"),
    ("<nodeVersion>", "v22.23.3"),
];

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

/// Recorded values to live ones.
struct Substitution {
    /// Whole-string replacements (request id, path, the messages'
    /// `client_message_id`s, …); `None`: the live
    /// command lacks the field, so it disappears from the answer (the
    /// runtime echoes `request_id` only when given one).
    whole: Vec<(String, Option<String>)>,
    /// Substring replacements (agent and conversation ids, placeholders).
    parts: Vec<(String, String)>,
}

impl Substitution {
    fn new(recorded: &Value, live: &Value) -> Self {
        let mut whole = Vec::new();
        if let (Some(rec), Some(live)) = (recorded.as_object(), live.as_object()) {
            for (k, v) in rec.iter().filter(|(k, _)| *k != "type") {
                if let Some(v) = v.as_str() {
                    whole.push((v.to_owned(), live.get(k).and_then(Value::as_str).map(str::to_owned)));
                }
            }
        }
        // The messages' `client_message_id`s (the runtime echoes them).
        let messages = |v: &Value| v["payload"]["messages"].as_array().cloned().unwrap_or_default();
        for (rec, live) in messages(recorded).iter().zip(messages(live).iter().chain(std::iter::repeat(&Value::Null))) {
            if let Some(rec) = rec["client_message_id"].as_str() {
                whole.push((rec.to_owned(), live["client_message_id"].as_str().map(str::to_owned)));
            }
        }
        let scope = |key: &str, default: &str| {
            let live = live["runtime"][key].as_str().or_else(|| live[key].as_str());
            live.unwrap_or(default).to_owned()
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
        parts.extend(STAND_INS.iter().map(|(p, v)| ((*p).to_owned(), (*v).to_owned())));
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
                let dropped = |v: &Value| v.as_str().is_some_and(|s| self.whole.contains(&(s.to_owned(), None)));
                let kept = map.iter().filter(|(_, v)| !dropped(v));
                Value::Object(kept.map(|(k, v)| (k.clone(), self.value(v))).collect::<Map<_, _>>())
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
