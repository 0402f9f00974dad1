//! `POST /input?wait=completion`: follow one turn on the event hub, from the
//! runtime's `input_accepted` to its `turn_finished`, and answer with the
//! assembled assistant text — the synchronous answer low-code tools need.
//!
//! The follower subscribes to the hub *before* the frame is written, so no
//! event of the turn can slip past it, and reads only events of the command's
//! runtime and scope. Which events belong to the turn:
//! - `input_accepted` with the command's `request_id` opens it;
//! - disposition `started`: everything in scope after it, up to the first
//!   `turn_finished`;
//! - disposition `queued`: the runtime first finishes the turns ahead of it;
//!   ours starts with the `user_message` delta whose `otid` is one of our
//!   messages' `client_message_id` (the bridge fills in missing ones, so
//!   every message has one), and ends with the next `turn_finished`.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;
use utoipa::ToSchema;

use super::ApiError;
use crate::hub::{Event, Hub, Read, Start, Subscription};

/// Most events read from the ring per wake-up.
const BATCH: usize = 256;

/// A finished turn, as `POST /input?wait=completion` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnResult {
    /// The `input` frame's `request_id`.
    pub request_id: String,
    pub runtime_id: String,
    pub agent_id: String,
    pub conversation_id: Option<String>,
    /// From `input_accepted`: `started`, or `queued` behind a running turn.
    pub disposition: Option<String>,
    /// From `turn_finished`: `end_turn`, `cancelled`, `error`, …
    pub stop_reason: String,
    pub run_id: Option<String>,
    /// The assistant's text: the `assistant_message` deltas of the turn in
    /// order; separate assistant messages are joined with a blank line.
    pub text: String,
    /// From `turn_finished`, when the runtime gave one.
    pub error: Option<String>,
    /// Event id just before the command was sent: `GET /events` with
    /// `Last-Event-ID` set to it replays everything since.
    pub cursor: String,
    /// Ids of the turn's events, oldest first: `input_accepted` through `turn_finished`.
    pub event_ids: Vec<String>,
    /// The `turn_finished` event as subscribers received it.
    #[schema(value_type = Object)]
    pub turn_finished: Value,
}

/// Where the follower is in the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `input_accepted` with our `request_id`.
    Accepting,
    /// Accepted as `queued`: waiting for our `user_message` to start a turn.
    Queued,
    /// Our turn is running: collecting until `turn_finished`.
    Running,
}

/// Follows one `input` command's turn on the hub.
pub struct Turn {
    sub: Subscription,
    hub: Hub,
    runtime_id: Arc<str>,
    request_id: String,
    agent_id: String,
    conversation_id: Option<String>,
    /// The `client_message_id`s of the command's messages.
    otids: Vec<String>,
    cursor: String,
    phase: Phase,
    disposition: Option<String>,
    text: String,
    /// `delta.id` of the last assistant message appended to `text`.
    last_message: Option<String>,
    event_ids: Vec<String>,
}

impl Turn {
    /// Checks that `frame` is an `input` that can be followed, gives every
    /// message a `client_message_id`, and subscribes — call it before the
    /// frame is written.
    pub fn start(hub: &Hub, runtime_id: Arc<str>, frame: &mut Map<String, Value>) -> Result<Self, ApiError> {
        if frame.get("type").and_then(Value::as_str) != Some("input") {
            return Err(ApiError::BadRequest("wait=completion is for input frames only".into()));
        }
        let scope = frame.get("runtime").and_then(Value::as_object);
        let agent_id = scope.and_then(|s| s.get("agent_id")).and_then(Value::as_str).ok_or_else(|| {
            ApiError::Invalid(
                "wait=completion needs `runtime.agent_id` (and `conversation_id`) to follow the turn".into(),
            )
        })?;
        let agent_id = agent_id.to_owned();
        let conversation_id = scope.and_then(|s| s.get("conversation_id")).and_then(Value::as_str).map(str::to_owned);
        let request_id = frame.get("request_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let otids = fill_client_message_ids(frame);
        let (sub, _) = hub.subscribe(Start::Live);
        let cursor = hub.event_id(sub.position());
        Ok(Self {
            sub,
            hub: hub.clone(),
            runtime_id,
            request_id,
            agent_id,
            conversation_id,
            otids,
            cursor,
            phase: Phase::Accepting,
            disposition: None,
            text: String::new(),
            last_message: None,
            event_ids: Vec::new(),
        })
    }

    /// Reads the hub until the turn finishes, the runtime goes offline, or
    /// `deadline` passes.
    pub async fn finish(mut self, deadline: Instant) -> Result<TurnResult, ApiError> {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let read = match tokio::time::timeout_at(deadline, self.sub.recv(&mut batch, BATCH)).await {
                Ok(read) => read,
                Err(_) => return Err(self.timed_out()),
            };
            if let Read::Lagged { missed, .. } = read {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "the replay ring dropped {missed} events while request {:?} was following its turn; \
                     raise LETTA_BRIDGE_REPLAY_EVENTS",
                    self.request_id
                )));
            }
            for event in batch.drain(..) {
                if let Some(done) = self.on_event(&event)? {
                    return Ok(done);
                }
            }
        }
    }

    /// One event from the hub; `Some` once the turn is finished.
    fn on_event(&mut self, event: &Event) -> Result<Option<TurnResult>, ApiError> {
        if event.runtime_id.as_deref() != Some(&*self.runtime_id) {
            return Ok(None);
        }
        if &*event.kind == "runtime_offline" {
            return Err(ApiError::RuntimeGone(self.request_id.clone()));
        }
        if !self.in_scope(event) {
            return Ok(None);
        }
        match (self.phase, &*event.kind) {
            (Phase::Accepting, "input_accepted") => {
                let data = json(event);
                if data.get("request_id").and_then(Value::as_str) != Some(&self.request_id) {
                    return Ok(None);
                }
                if data.get("accepted").and_then(Value::as_bool) != Some(true) {
                    let why = data.get("error").and_then(Value::as_str).unwrap_or("no reason given");
                    return Err(ApiError::Conflict(format!(
                        "the runtime did not accept input {:?}: {why}",
                        self.request_id
                    )));
                }
                self.disposition = data.get("disposition").and_then(Value::as_str).map(str::to_owned);
                let queued = self.disposition.as_deref() == Some("queued") && !self.otids.is_empty();
                self.phase = if queued { Phase::Queued } else { Phase::Running };
                self.event_ids.push(self.hub.event_id(event.seq));
            }
            (Phase::Queued, "stream_delta") => {
                let data = json(event);
                let delta = &data["delta"];
                let ours = delta["message_type"] == "user_message"
                    && delta["otid"].as_str().is_some_and(|o| self.otids.iter().any(|m| m == o));
                if ours {
                    self.phase = Phase::Running;
                    self.event_ids.push(self.hub.event_id(event.seq));
                }
            }
            (Phase::Running, kind) => {
                self.event_ids.push(self.hub.event_id(event.seq));
                match kind {
                    "stream_delta" => self.append(&json(event)["delta"]),
                    "turn_finished" => return Ok(Some(self.finished(json(event)))),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(None)
    }

    fn in_scope(&self, event: &Event) -> bool {
        event.agent_id.as_deref() == Some(self.agent_id.as_str())
            && match &self.conversation_id {
                Some(c) => event.conversation_id.as_deref() == Some(c.as_str()),
                None => true,
            }
    }

    /// Appends an `assistant_message` delta's text.
    fn append(&mut self, delta: &Value) {
        if delta["message_type"] != "assistant_message" {
            return;
        }
        let id = delta["id"].as_str();
        if id.is_some() && self.last_message.as_deref() != id {
            if !self.text.is_empty() {
                self.text.push_str("\n\n");
            }
            self.last_message = id.map(str::to_owned);
        }
        match &delta["content"] {
            Value::String(s) => self.text.push_str(s),
            Value::Array(parts) => {
                for part in parts {
                    if part["type"] == "text"
                        && let Some(t) = part["text"].as_str()
                    {
                        self.text.push_str(t);
                    }
                }
            }
            _ => {}
        }
    }

    fn finished(&mut self, turn_finished: Value) -> TurnResult {
        let field = |name: &str| turn_finished.get(name).and_then(Value::as_str).map(str::to_owned);
        TurnResult {
            request_id: std::mem::take(&mut self.request_id),
            runtime_id: self.runtime_id.to_string(),
            agent_id: std::mem::take(&mut self.agent_id),
            conversation_id: self.conversation_id.take(),
            disposition: self.disposition.take(),
            stop_reason: field("stop_reason").unwrap_or_default(),
            run_id: field("run_id"),
            error: field("error"),
            text: std::mem::take(&mut self.text),
            cursor: std::mem::take(&mut self.cursor),
            event_ids: std::mem::take(&mut self.event_ids),
            turn_finished,
        }
    }

    fn timed_out(&self) -> ApiError {
        let state = match self.phase {
            Phase::Accepting => "the runtime did not accept it",
            Phase::Queued => "it is still queued behind another turn",
            Phase::Running => "the turn had not finished",
        };
        ApiError::Timeout(format!(
            "request {:?} timed out: {state}; its events can be read from GET /events with Last-Event-ID: {}",
            self.request_id, self.cursor
        ))
    }
}

/// The event's JSON (events are compact JSON objects; anything else reads as `null`).
fn json(event: &Event) -> Value {
    serde_json::from_slice(&event.data()).unwrap_or(Value::Null)
}

/// Gives every message of a `create_message` payload a `client_message_id`
/// (the runtime echoes it as the `otid` of the turn's `user_message`), and
/// returns them all.
fn fill_client_message_ids(frame: &mut Map<String, Value>) -> Vec<String> {
    let Some(messages) = frame.get_mut("payload").and_then(|p| p.get_mut("messages")).and_then(Value::as_array_mut)
    else {
        return Vec::new();
    };
    messages
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .map(|m| {
            let id = m
                .entry("client_message_id")
                .or_insert_with(|| Value::String(format!("cm-{}", uuid::Uuid::new_v4().simple())));
            id.as_str().unwrap_or_default().to_owned()
        })
        .filter(|id| !id.is_empty())
        .collect()
}
