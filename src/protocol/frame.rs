//! Reading frames the runtime sends: validate once, pull out the few fields
//! the bridge routes on, and keep the original text for subscribers.
//!
//! The frame is never rebuilt as a tree: its text is checked by one serde pass
//! that only materialises `type`, `request_id` and the runtime scope, and the
//! event data is the original text with `"runtime_id"` spliced in.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::scope::EventScope;

/// Longest frame `type` accepted (it becomes the SSE `event:` name).
pub const MAX_TYPE_LEN: usize = 128;

/// Deepest nesting accepted (the frame object itself is level 1): what
/// common JSON parsers can read back on the subscriber side; serde_json's
/// default recursion limit reads 127 levels, not 128.
pub const MAX_DEPTH: usize = 127;

/// A validated runtime frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFrame {
    /// The frame's `type`.
    pub kind: String,
    /// `request_id`, when it is a string.
    pub request_id: Option<String>,
    /// `runtime.agent_id`, when present.
    pub agent_id: Option<String>,
    /// `runtime.conversation_id`, when present.
    pub conversation_id: Option<String>,
    /// The frame as compact single-line JSON with `runtime_id` added first.
    pub data: String,
}

/// Why a runtime frame was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON, or not an object with a string `type`.
    #[error("not a JSON object with a string `type`: {0}")]
    Json(String),
    /// A `type` that is not a safe token.
    #[error("frame `type` must be 1-{MAX_TYPE_LEN} characters of [A-Za-z0-9_.:-]")]
    BadType,
    /// Nested deeper than subscribers' parsers read.
    #[error("frame nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    request_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    runtime: Option<&'a RawValue>,
    #[serde(default, borrow)]
    runtime_id: Option<&'a RawValue>,
}

/// True for names safe to use as an SSE `event:` field and in logs.
pub fn is_valid_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_TYPE_LEN
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Parses a frame from runtime `runtime_id`. Unknown fields pass through
/// untouched; a non-string `request_id` or a non-object `runtime` is kept in
/// the data but not used for routing.
pub fn parse_runtime_frame(text: &str, runtime_id: &str) -> Result<RuntimeFrame, FrameError> {
    // serde's derived structs also accept arrays (fields by position): only
    // an object is a frame. (Found by the `runtime_frame` fuzz target.)
    if !starts_with_object(text) {
        return Err(FrameError::Json("not a JSON object".into()));
    }
    let head: Head<'_> = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    if !is_valid_type(&head.kind) {
        return Err(FrameError::BadType);
    }
    if may_nest_deeper_than(text, MAX_DEPTH) && nesting_depth(text) > MAX_DEPTH {
        return Err(FrameError::TooDeep);
    }
    let request_id = head.request_id.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    let scope = head.runtime.and_then(|raw| serde_json::from_str::<EventScope>(raw.get()).ok()).unwrap_or_default();
    let data = if head.runtime_id.is_some() {
        // The runtime sent a field of that name: overwrite it on a tree.
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
        value.insert("runtime_id".into(), runtime_id.into());
        serde_json::to_string(&value).expect("a map of JSON values serialises")
    } else {
        splice_runtime_id(text, runtime_id)
    };
    Ok(RuntimeFrame {
        kind: head.kind.into_owned(),
        request_id,
        agent_id: scope.agent_id,
        conversation_id: scope.conversation_id,
        data,
    })
}

/// True when the first non-whitespace character of `text` opens an object.
pub fn starts_with_object(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{')
}

/// False when `text` has too few brackets to nest deeper than `max`: a cheap
/// (vectorised) count that spares almost every frame the exact scan.
fn may_nest_deeper_than(text: &str, max: usize) -> bool {
    text.bytes().filter(|&b| b == b'{' || b == b'[').count() > max
}

/// Deepest array/object nesting of valid JSON `text` (brackets inside
/// strings do not count).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// `{"runtime_id":"<id>",` + the rest of the object, on one line.
///
/// Raw line breaks can only be whitespace between JSON tokens (strings must
/// escape them), so turning them into spaces keeps the JSON equal and makes it
/// safe for a single SSE `data:` line.
fn splice_runtime_id(text: &str, runtime_id: &str) -> String {
    let body = text.trim_start_matches([' ', '\t', '\n', '\r']);
    let rest = &body[1..]; // `starts_with_object` checked the '{'
    let id = serde_json::to_string(runtime_id).expect("strings serialise");
    let mut out = String::with_capacity(text.len() + id.len() + 16);
    out.push_str("{\"runtime_id\":");
    out.push_str(&id);
    out.push(',');
    if memchr::memchr2(b'\n', b'\r', rest.as_bytes()).is_some() {
        out.extend(rest.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
    } else {
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(text: &str) -> Result<RuntimeFrame, FrameError> {
        parse_runtime_frame(text, "dev-1")
    }

    #[test]
    fn routing_fields_are_read_and_data_keeps_every_field() {
        let text = r#"{"type":"sync_response","request_id":"r1","runtime":{"agent_id":"a","conversation_id":"c"},"x":[1,{"y":null}]}"#;
        let f = parse(text).unwrap();
        assert_eq!(f.kind, "sync_response");
        assert_eq!(f.request_id.as_deref(), Some("r1"));
        assert_eq!(f.agent_id.as_deref(), Some("a"));
        assert_eq!(f.conversation_id.as_deref(), Some("c"));
        let mut expected: Value = serde_json::from_str(text).unwrap();
        expected["runtime_id"] = json!("dev-1");
        assert_eq!(serde_json::from_str::<Value>(&f.data).unwrap(), expected);
        assert!(f.data.starts_with(r#"{"runtime_id":"dev-1","type""#));
    }

    #[test]
    fn pretty_printed_frames_become_one_line() {
        let f = parse("{\n  \"type\": \"x\",\r\n  \"s\": \"a\\nb\"\n}\n").unwrap();
        assert!(!f.data.contains(['\n', '\r']));
        let v: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(v["s"], "a\nb");
    }

    #[test]
    fn a_runtime_id_field_from_the_runtime_is_overwritten() {
        let f = parse(r#"{"type":"x","runtime_id":"spoof"}"#).unwrap();
        let v: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(v["runtime_id"], "dev-1");
    }

    #[test]
    fn odd_optional_fields_do_not_reject_the_frame() {
        let f = parse(r#"{"type":"x","request_id":7,"runtime":"nope"}"#).unwrap();
        assert_eq!(f.request_id, None);
        assert_eq!(f.agent_id, None);
    }

    #[test]
    fn non_objects_and_bad_types_are_rejected() {
        for bad in [
            "",
            "null",
            "[]",
            r#"["x", 2]"#,
            " [\"ping\"]",
            "\"ping\"",
            "{}",
            r#"{"type":1}"#,
            "{\"type\":\"x\"} trailing",
            "{\"type\":\"x\"",
        ] {
            assert!(matches!(parse(bad), Err(FrameError::Json(_))), "{bad:?}");
        }
        for bad in [r#"{"type":""}"#, r#"{"type":"a\nb"}"#, r#"{"type":"a b"}"#] {
            assert_eq!(parse(bad), Err(FrameError::BadType), "{bad:?}");
        }
        let long = format!(r#"{{"type":"{}"}}"#, "a".repeat(MAX_TYPE_LEN + 1));
        assert_eq!(parse(&long), Err(FrameError::BadType));
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let nest = |n: usize| format!(r#"{{"type":"x","v":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        assert_eq!(parse(&nest(100_000)), Err(FrameError::TooDeep));
        let deepest = parse(&nest(MAX_DEPTH - 1)).expect("the deepest accepted frame");
        serde_json::from_str::<Value>(&deepest.data).expect("subscribers' parsers can read the deepest frame");
        assert_eq!(parse(&nest(MAX_DEPTH)), Err(FrameError::TooDeep));
        assert!(parse(r#"{"type":"x","s":"[[[[\"[[["}"#).is_ok(), "brackets in strings do not count");
    }
}
