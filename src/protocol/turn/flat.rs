//! The two flat events of webhooks, for readers that want one payload, not
//! a stream: `turn.finished` (a conversation's turn ended: the assistant's
//! text assembled as `?wait=completion` assembles it, the stop reason, the
//! runtime's turn id) and `approval.requested` (a tool waits for an
//! approval: its name, arguments and the request id `POST /approval`
//! answers). Pure rules: the caller feeds every event of the log in order.
//!
//! A turn's text is what `assistant_message` deltas of its conversation
//! said since the last `turn_finished` of that conversation (a
//! `runtime_offline` of its runtime forgets what was collected). Bounded:
//! at most [`MAX_OPEN`] conversations collect at once, each at most
//! [`MAX_TEXT_BYTES`]; beyond, the oldest conversation is forgotten (its
//! `turn.finished` then carries only the text since).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use super::Seen;
use super::collected::Collected;
use crate::protocol::wire;

/// The flat event of a finished turn.
pub const TURN_FINISHED_FLAT: &str = "turn.finished";
/// The flat event of a tool approval request.
pub const APPROVAL_REQUESTED: &str = "approval.requested";
/// Most conversations collecting text at once.
pub const MAX_OPEN: usize = 4_096;
/// Most text collected for one turn, in bytes (the rest is cut).
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// One flat event: its type and its payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Flat {
    /// `turn.finished`.
    TurnFinished {
        /// The runtime (its device id).
        runtime: String,
        /// The agent.
        agent_id: Option<String>,
        /// The conversation.
        conversation_id: Option<String>,
        /// The assistant's text, assembled.
        text: String,
        /// `turn_finished.stop_reason`, e.g. `end_turn`.
        stop_reason: Option<String>,
        /// `turn_finished.turn_id`, the runtime's id of the turn.
        turn_id: Option<String>,
        /// `turn_finished.run_id`.
        run_id: Option<String>,
    },
    /// `approval.requested`.
    ApprovalRequested {
        /// The runtime (its device id).
        runtime: String,
        /// The agent.
        agent_id: Option<String>,
        /// The conversation.
        conversation_id: Option<String>,
        /// The request to answer with `POST /approval` (`perm-…`).
        request_id: String,
        /// The tool, e.g. `Bash`.
        tool_name: String,
        /// Its arguments.
        arguments: Value,
        /// The model's tool call id.
        tool_call_id: Option<String>,
    },
}

impl Flat {
    /// Its event type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TurnFinished { .. } => TURN_FINISHED_FLAT,
            Self::ApprovalRequested { .. } => APPROVAL_REQUESTED,
        }
    }
}

type Key = (String, Option<String>, Option<String>);

/// The text each conversation's running turn said so far.
#[derive(Default)]
pub struct Flats {
    open: HashMap<Key, Collected>,
    /// Keys of `open`, oldest first (the eviction order).
    order: VecDeque<Key>,
}

impl Flats {
    /// Reads the next event of the log; the flat event it completes, if any.
    pub fn read(&mut self, seen: &Seen<'_>) -> Option<Flat> {
        let runtime = seen.runtime_id?;
        match seen.kind {
            wire::STREAM_DELTA | wire::TURN_FINISHED | wire::CONTROL_REQUEST => {}
            wire::RUNTIME_OFFLINE => {
                self.open.retain(|k, _| k.0 != runtime);
                self.order.retain(|k| k.0 != runtime);
                return None;
            }
            _ => return None,
        }
        let data: Value = serde_json::from_slice(seen.data).ok()?;
        let key: Key = (runtime.to_owned(), seen.agent_id.map(str::to_owned), seen.conversation_id.map(str::to_owned));
        let text = |v: &Value| v.as_str().map(str::to_owned);
        match seen.kind {
            wire::STREAM_DELTA => {
                if data["delta"]["message_type"] == "assistant_message" {
                    let collected = self.entry(key);
                    if collected.text.len() < MAX_TEXT_BYTES {
                        collected.delta(&data["delta"]);
                    }
                }
                None
            }
            wire::TURN_FINISHED => {
                let said = self.open.remove(&key).map(|c| c.text).unwrap_or_default();
                self.order.retain(|k| *k != key);
                let (runtime, agent_id, conversation_id) = key;
                Some(Flat::TurnFinished {
                    runtime,
                    agent_id,
                    conversation_id,
                    text: said,
                    stop_reason: text(&data["stop_reason"]),
                    turn_id: text(&data["turn_id"]),
                    run_id: text(&data["run_id"]),
                })
            }
            _ => {
                let request = &data["request"];
                if request["subtype"] != "can_use_tool" {
                    return None;
                }
                let (runtime, agent_id, conversation_id) = key;
                Some(Flat::ApprovalRequested {
                    runtime,
                    agent_id,
                    conversation_id,
                    request_id: text(&data["request_id"])?,
                    tool_name: text(&request["tool_name"]).unwrap_or_default(),
                    arguments: request["input"].clone(),
                    tool_call_id: text(&request["tool_call_id"]),
                })
            }
        }
    }

    fn entry(&mut self, key: Key) -> &mut Collected {
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN
                && let Some(oldest) = self.order.pop_front()
            {
                self.open.remove(&oldest);
            }
            self.order.push_back(key.clone());
        }
        self.open.entry(key).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen<'a>(kind: &'a str, conversation: &'a str, data: &'a str) -> Seen<'a> {
        Seen {
            kind,
            runtime_id: Some("rt"),
            agent_id: Some("ag"),
            conversation_id: Some(conversation),
            data: data.as_bytes(),
        }
    }

    #[test]
    fn a_turn_finished_carries_the_text_its_conversation_said_since_the_last_one() {
        let mut flats = Flats::default();
        let delta = r#"{"delta":{"message_type":"assistant_message","id":"m1","content":"Hello"}}"#;
        let other = r#"{"delta":{"message_type":"assistant_message","id":"m9","content":"elsewhere"}}"#;
        assert_eq!(flats.read(&seen("stream_delta", "c1", delta)), None);
        assert_eq!(flats.read(&seen("stream_delta", "c2", other)), None);
        let finished = r#"{"stop_reason":"end_turn","turn_id":"t-1","run_id":"r-1"}"#;
        let Some(Flat::TurnFinished { text, stop_reason, turn_id, .. }) =
            flats.read(&seen("turn_finished", "c1", finished))
        else {
            panic!("a turn_finished is flattened")
        };
        assert_eq!(
            (text.as_str(), stop_reason.as_deref(), turn_id.as_deref()),
            ("Hello", Some("end_turn"), Some("t-1"))
        );
        let Some(Flat::TurnFinished { text, .. }) = flats.read(&seen("turn_finished", "c1", finished)) else {
            panic!()
        };
        assert_eq!(text, "", "the next turn starts empty");
    }

    #[test]
    fn a_can_use_tool_request_is_an_approval_requested_with_its_tool_and_request_id() {
        let mut flats = Flats::default();
        let data = r#"{"request_id":"perm-1","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"ls"},"tool_call_id":"call-1"}}"#;
        let flat = flats.read(&seen("control_request", "c1", data)).expect("flattened");
        assert_eq!(flat.kind(), APPROVAL_REQUESTED);
        let json = serde_json::to_value(&flat).unwrap();
        assert_eq!((json["request_id"].as_str(), json["tool_name"].as_str()), (Some("perm-1"), Some("Bash")));
        assert_eq!(json["arguments"]["command"], "ls");
    }
}
