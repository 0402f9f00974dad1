//! Turns volatile values into stable placeholders, so re-recording the same
//! runtime version gives (almost) no diff and the fake runtime can put its
//! own values back: named literals (`<agent-id>`, `<home>`, …), UUIDs
//! (`<uuid-N>`, numbered by first appearance in each fixture file),
//! ISO timestamps (every digit 0, so the format shows), event sequence
//! numbers, and the runtime's Node version and OS.

use serde_json::{Map, Value};

/// Fields whose value is volatile by nature (replaced by `<key>`).
const VOLATILE_KEYS: &[&str] = &["nodeVersion", "os"];

/// Headers whose value changes from run to run.
pub const VOLATILE_HEADERS: &[&str] = &["host", "content-length", "sec-websocket-key"];

#[derive(Default)]
pub struct Normaliser {
    /// `(literal, placeholder)`, replaced as substrings, longest first.
    named: Vec<(String, String)>,
    uuids: Vec<String>,
}

impl Normaliser {
    /// Replaces every occurrence of `literal` by `placeholder` from now on.
    pub fn name(&mut self, literal: impl Into<String>, placeholder: impl Into<String>) {
        let literal = literal.into();
        if literal.is_empty() || self.named.iter().any(|(l, _)| *l == literal) {
            return;
        }
        self.named.push((literal, placeholder.into()));
        self.named.sort_by_key(|(l, _)| std::cmp::Reverse(l.len()));
    }

    /// Starts a new fixture file: UUIDs are numbered per file, so a change
    /// in one exchange does not renumber the others.
    pub fn new_file(&mut self) {
        self.uuids.clear();
    }

    /// A runtime frame: the generic rules plus its envelope (`event_seq`
    /// and the sequence number inside `idempotency_key`).
    pub fn frame(&mut self, frame: &Value) -> Value {
        let mut out = self.value(frame);
        if let Some(obj) = out.as_object_mut() {
            let seq = frame.get("event_seq").and_then(Value::as_u64);
            if let Some(seq) = seq {
                obj.insert("event_seq".into(), "<event-seq>".into());
                if let Some(Value::String(key)) = obj.get_mut("idempotency_key") {
                    *key = key.replacen(&format!(":{seq}:"), ":<event-seq>:", 1);
                }
            }
        }
        out
    }

    pub fn value(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.string(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let v = if VOLATILE_KEYS.contains(&k.as_str()) && !v.is_null() {
                        Value::String(format!("<{k}>"))
                    } else {
                        self.value(v)
                    };
                    out.insert(self.string(k), v);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    /// Headers: volatile ones become `<name>`, the rest are normalised strings.
    pub fn headers(&mut self, headers: &std::collections::BTreeMap<String, String>) -> Value {
        let mut out = Map::new();
        for (k, v) in headers {
            let v = if VOLATILE_HEADERS.contains(&k.as_str()) { format!("<{k}>") } else { self.string(v) };
            out.insert(k.clone(), Value::String(v));
        }
        Value::Object(out)
    }

    pub fn string(&mut self, s: &str) -> String {
        if is_iso_timestamp(s) {
            // Every digit to 0: stable, and the format stays visible.
            return s.chars().map(|c| if c.is_ascii_digit() { '0' } else { c }).collect();
        }
        let mut s = s.to_owned();
        for (literal, placeholder) in &self.named {
            if s.contains(literal.as_str()) {
                s = s.replace(literal.as_str(), placeholder);
            }
        }
        self.replace_uuids(&s)
    }

    fn replace_uuids(&mut self, s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < bytes.len() {
            if i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
                let uuid = s[i..i + 36].to_ascii_lowercase();
                let n = match self.uuids.iter().position(|u| *u == uuid) {
                    Some(n) => n + 1,
                    None => {
                        self.uuids.push(uuid);
                        self.uuids.len()
                    }
                };
                out.push_str(&format!("<uuid-{n}>"));
                i += 36;
            } else {
                let ch = s[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// `YYYY-MM-DDTHH:MM:SS` with optional fraction and zone.
fn is_iso_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 19
        && b.len() <= 35
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuids_are_numbered_and_envelopes_normalised() {
        let mut n = Normaliser::default();
        n.name("/tmp/home-1", "<home>");
        let f = json!({
            "type": "x", "event_seq": 7, "emitted_at": "2026-01-01T00:00:00.000Z",
            "idempotency_key": "x:7:0a1b2c3d-0000-4000-8000-00000000000A",
            "path": "/tmp/home-1/.letta", "run_id": "run-0a1b2c3d-0000-4000-8000-00000000000a",
        });
        let out = n.frame(&f);
        assert_eq!(
            out,
            json!({
                "type": "x", "event_seq": "<event-seq>", "emitted_at": "0000-00-00T00:00:00.000Z",
                "idempotency_key": "x:<event-seq>:<uuid-1>", "path": "<home>/.letta", "run_id": "run-<uuid-1>",
            })
        );
    }
}
