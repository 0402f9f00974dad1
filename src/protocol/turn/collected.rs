//! What following a turn gathers from its events: the assistant's text
//! and reasoning, the model's token usage, the run that stops for an
//! approval, the runtime's failure report, the event ids; and starting over
//! when the events turn out to be another turn's.

use serde_json::Value;

use super::owner::{Owner, Owners};
use super::{REQUIRES_APPROVAL, TokenUsage};

/// What the turn's events said so far.
#[derive(Debug, Default)]
pub(super) struct Collected {
    pub(super) text: String,
    /// `delta.id` of the last assistant message appended to `text`.
    last_message: Option<String>,
    /// The `reasoning_message` deltas' text, joined as `text` is.
    pub(super) reasoning: String,
    /// `delta.id` of the last reasoning message appended to `reasoning`.
    last_reasoning: Option<String>,
    /// The sum of the turn's `usage_statistics` deltas (one per model call).
    pub(super) usage: Option<TokenUsage>,
    /// `run_id` of the `requires_approval` stop reason delta, if one came.
    pub(super) approval_run: Option<String>,
    /// The runtime's `loop_status.failure` for this turn, as it sent it.
    pub(super) failure: Option<Value>,
    /// True when `failure` named our messages: it survives [`Collected::restart`].
    failure_named_us: bool,
    pub(super) event_ids: Vec<String>,
    /// How many of `event_ids` came up to the acceptance ([`Collected::restart`] keeps them).
    accepted_ids: usize,
}

impl Collected {
    /// Marks the events so far as the acceptance's: kept by a restart.
    pub(super) fn accepted(&mut self) {
        self.accepted_ids = self.event_ids.len();
    }

    /// Drops what was collected since the acceptance: it was another turn's.
    pub(super) fn restart(&mut self) {
        self.event_ids.truncate(self.accepted_ids);
        self.text.clear();
        self.last_message = None;
        self.reasoning.clear();
        self.last_reasoning = None;
        self.usage = None;
        self.approval_run = None;
        if !self.failure_named_us {
            self.failure = None;
        }
    }

    /// Reads what an event of the turn adds: assistant text, the run that
    /// stops for an approval, the runs' owners and the turn's failure.
    pub(super) fn read(&mut self, kind: &str, data: &Value, owners: &mut Owners) {
        match kind {
            "stream_delta" => self.delta(&data["delta"]),
            "update_loop_status" => self.loop_status(&data["loop_status"], owners),
            _ => {}
        }
    }

    /// Reads a `stream_delta`'s `delta`: assistant text, reasoning, token
    /// usage, or the run that stops for an approval.
    pub(super) fn delta(&mut self, delta: &Value) {
        match delta["message_type"].as_str() {
            Some("assistant_message") => append(&mut self.text, &mut self.last_message, delta, &delta["content"]),
            Some("reasoning_message") => {
                append(&mut self.reasoning, &mut self.last_reasoning, delta, &delta["reasoning"]);
            }
            Some("usage_statistics") => self.usage = Some(self.usage.unwrap_or_default().plus(delta)),
            Some("stop_reason") if delta["stop_reason"] == REQUIRES_APPROVAL => {
                self.approval_run = delta["run_id"].as_str().map(str::to_owned);
            }
            _ => {}
        }
    }

    /// Reads an `update_loop_status`'s `loop_status` (newer runtimes): the
    /// runs it correlates with messages, and a `failure`, kept when it
    /// names our messages or names none (then it is this turn's).
    fn loop_status(&mut self, status: &Value, owners: &mut Owners) {
        owners.read_loop_status(status);
        let Some(failure) = status.get("failure").filter(|f| f.is_object()) else {
            return;
        };
        match owners.of_ids(failure.get("client_message_ids")) {
            Owner::Ours => {
                self.failure = Some(failure.clone());
                self.failure_named_us = true;
            }
            Owner::Unknown if !self.failure_named_us => self.failure = Some(failure.clone()),
            Owner::Unknown | Owner::Other => {}
        }
    }
}

/// Appends a message delta's text (`content` or `reasoning`: a string, or
/// text parts) to `text`; a new message (another `delta.id`) after a blank
/// line.
fn append(text: &mut String, last: &mut Option<String>, delta: &Value, content: &Value) {
    let id = delta["id"].as_str();
    if id.is_some() && last.as_deref() != id {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        *last = id.map(str::to_owned);
    }
    match content {
        Value::String(s) => text.push_str(s),
        Value::Array(parts) => {
            for part in parts {
                if part["type"] == "text"
                    && let Some(t) = part["text"].as_str()
                {
                    text.push_str(t);
                }
            }
        }
        _ => {}
    }
}
