//! The frames the bridge itself sends Letta's clients on their sockets —
//! `pong`, a refusal in the shape of the reply the client's library waits
//! for, an `error` — and the client's frames that are bookkeeping
//! (`ack`, `ping`), never the runtime's business.

use serde_json::{Map, Value, json};

use crate::protocol::wire;

/// A frame a client sends that the bridge answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bookkeeping {
    /// `ack` of a relay frame's `seq`: taken, nothing to answer.
    Ack,
    /// `ping`: answered with [`pong`].
    Ping,
}

impl Bookkeeping {
    /// The bookkeeping a frame of type `kind` is, if any.
    pub fn of(kind: &str) -> Option<Self> {
        match kind {
            wire::ACK => Some(Self::Ack),
            wire::PING => Some(Self::Ping),
            _ => None,
        }
    }
}

/// True for the client's answers to the runtime's own requests
/// (`*_response`): they keep the runtime's `request_id`.
pub fn answers_the_runtime(kind: &str) -> bool {
    wire::is_response(kind)
}

/// The answer to a `ping` (relay bookkeeping, like `ack`: never numbered).
pub fn pong() -> String {
    json!({"type": wire::PONG}).to_string()
}

/// The frame that tells a client its command was not sent: the reply its
/// client library waits for (`input_accepted`, `<type>_response`) with the
/// command's `request_id` and the reason; a generic `error` without an id.
pub fn refusal(kind: &str, request_id: Option<&str>, why: &str) -> String {
    let Some(request_id) = request_id else { return error(None, why) };
    let mut frame = Map::new();
    match kind {
        wire::INPUT => {
            frame.insert("type".into(), wire::INPUT_ACCEPTED.into());
            frame.insert("accepted".into(), false.into());
        }
        _ if wire::is_response(kind) || kind.is_empty() => return error(Some(request_id), why),
        _ => {
            frame.insert("type".into(), wire::response_type(kind).into());
            frame.insert("success".into(), false.into());
        }
    }
    frame.insert("request_id".into(), request_id.into());
    frame.insert("error".into(), why.into());
    Value::Object(frame).to_string()
}

/// An `error` frame: what went wrong, and the command's id if it had one.
pub fn error(request_id: Option<&str>, why: &str) -> String {
    json!({"type": wire::ERROR, "request_id": request_id, "message": why}).to_string()
}

/// The `error` frame of a socket refused before it is served: why, and the
/// runtimes to choose from when several are online.
pub fn refused(why: &str, candidates: &[String]) -> String {
    json!({"type": wire::ERROR, "message": why, "candidates": candidates}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_the_reply_the_client_library_waits_for() {
        let input: Value = serde_json::from_str(&refusal("input", Some("input-1"), "no")).unwrap();
        assert_eq!(input, json!({"type": "input_accepted", "accepted": false, "request_id": "input-1", "error": "no"}));
        let start: Value = serde_json::from_str(&refusal("runtime_start", Some("rs-1"), "no")).unwrap();
        assert_eq!((start["type"].as_str(), start["success"].as_bool()), (Some("runtime_start_response"), Some(false)));
        let bare: Value = serde_json::from_str(&refusal("sync", None, "no")).unwrap();
        assert_eq!(bare["type"], "error");
    }
}
