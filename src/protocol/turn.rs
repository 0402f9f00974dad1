//! How one `input` command's turn unfolds in the runtime's events, from its
//! `input_accepted` to its `turn_finished` (or to the approval request it
//! stops at), and the assembled result that `POST /input?wait=completion`
//! and `POST /approval?wait=completion` answer with. Pure rules: the caller
//! feeds the events (see `runtime::turn` for the follower on the hub).
//!
//! Which events belong to the turn (only events of the command's runtime
//! and scope count):
//! - `input_accepted` with the command's `request_id` opens it (`accepted:
//!   false` ends it: refused, e.g. an approval that is no longer pending);
//! - disposition `started` (or none, as for an `approval_response`):
//!   everything in scope after it, up to the first `turn_finished`;
//! - disposition `queued`: the runtime first finishes the turns ahead of it;
//!   ours starts with the `user_message` delta whose `otid` is one of our
//!   messages' `client_message_id` (filled in by [`Turn::expect`], so every
//!   message has one), and ends with the next `turn_finished`;
//! - a `control_request` with `request.subtype: "can_use_tool"` in scope
//!   ends it too: the runtime waits for a tool approval (it sent the
//!   `stop_reason` delta `requires_approval` just before) and sends no
//!   `turn_finished` until it gets one. The result is `stop_reason:
//!   "requires_approval"` with the request to answer (`approval`). The
//!   answer (an `approval_response` input) continues the same turn in the
//!   same scope: followed from its own `input_accepted` (no disposition) to
//!   the turn's `turn_finished`, or to the next approval request; events in
//!   scope between sending it and that acknowledgement count too, since the
//!   runtime resumes the turn a moment before acknowledging (letta-code
//!   0.32.18, fixtures `approval_allow`, `approval_deny`);
//! - `runtime_offline` of the runtime ends it: the runtime is gone.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::events::PermissionSuggestion;

/// The `stop_reason` of a turn that stopped to ask for a tool approval.
pub const REQUIRES_APPROVAL: &str = "requires_approval";

/// A finished turn, or one stopped at an approval request, as
/// `POST /input?wait=completion` and `POST /approval?wait=completion` answer it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnResult {
    /// The `input` frame's `request_id`.
    pub request_id: String,
    /// The runtime that ran the turn.
    pub runtime_id: String,
    /// The agent of the input's scope.
    pub agent_id: String,
    /// The conversation of the input's scope.
    pub conversation_id: Option<String>,
    /// From `input_accepted`: `started`, or `queued` behind a running turn.
    pub disposition: Option<String>,
    /// From `turn_finished`: `end_turn`, `cancelled`, `error`, …; or
    /// `requires_approval`: the turn waits for the tool approval in
    /// `approval` (answer it with `POST /approval`).
    pub stop_reason: String,
    /// From `turn_finished` (for `requires_approval`: the run that asked).
    pub run_id: Option<String>,
    /// The assistant's text: the `assistant_message` deltas of the turn in
    /// order; separate assistant messages are joined with a blank line.
    pub text: String,
    /// From `turn_finished`, when the runtime gave one.
    pub error: Option<String>,
    /// Event id just before the command was sent: `GET /events` with
    /// `Last-Event-ID` set to it replays everything since.
    pub cursor: String,
    /// Ids of the turn's events, oldest first: `input_accepted` through
    /// `turn_finished` (or through the `control_request` it stopped at); for
    /// an approval, also the events of its scope the runtime sent just
    /// before acknowledging it.
    pub event_ids: Vec<String>,
    /// The `turn_finished` event as subscribers received it; null when the
    /// turn stopped at an approval request (`stop_reason: "requires_approval"`).
    #[schema(value_type = Option<Object>)]
    pub turn_finished: Option<Value>,
    /// With `stop_reason: "requires_approval"`: the approval request the
    /// turn waits for; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub approval: Option<Box<PendingApproval>>,
}

/// A tool call waiting for approval: the runtime's `control_request`
/// (`request.subtype: "can_use_tool"`). Answer it with `POST /approval`,
/// `payload.request_id` set to `request_id`; with `?wait=completion` that
/// answer follows the rest of the turn.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingApproval {
    /// The `control_request`'s `request_id` (`perm-<tool_call_id>`): the
    /// `payload.request_id` of the answer.
    pub request_id: String,
    /// The model's tool call id.
    pub tool_call_id: Option<String>,
    /// The tool, e.g. `Bash`.
    pub tool_name: Option<String>,
    /// The tool's arguments, e.g. `{"command":"touch notes.txt","description":"…"}`.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Standing permissions the user may grant with the approval (their ids
    /// go in `decision.selected_permission_suggestion_ids`).
    pub permission_suggestions: Vec<PermissionSuggestion>,
    /// The `control_request` event as subscribers received it.
    #[schema(value_type = Object)]
    pub control_request: Value,
}

impl PendingApproval {
    /// The pending approval a `control_request` event asks for, when it is a
    /// `can_use_tool` request with a `request_id`.
    pub fn of(control_request: Value) -> Option<Self> {
        let request = &control_request["request"];
        if request["subtype"] != "can_use_tool" {
            return None;
        }
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let suggestions = request.get("permission_suggestions").cloned().unwrap_or_default();
        Some(Self {
            request_id: text(&control_request["request_id"])?,
            tool_call_id: text(&request["tool_call_id"]),
            tool_name: text(&request["tool_name"]),
            input: request.get("input").cloned().unwrap_or(Value::Null),
            permission_suggestions: serde_json::from_value(suggestions).unwrap_or_default(),
            control_request,
        })
    }
}

/// Why a turn could not be followed to its end.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// `wait=completion` on a frame that is not an `input`.
    #[error("wait=completion is for input frames only")]
    NotInput,
    /// The input names no agent to follow.
    #[error("wait=completion needs `runtime.agent_id` (and `conversation_id`) to follow the turn")]
    NoAgent,
    /// The runtime answered `input_accepted` with `accepted: false`.
    #[error("the runtime did not accept {what}: {why}")]
    Refused {
        /// The input's `request_id`.
        request_id: String,
        /// What was refused: the input, or the answer to which approval request.
        what: String,
        /// The runtime's `error`, or a note that it gave none.
        why: String,
    },
    /// The runtime went offline before the turn finished.
    #[error("the runtime disconnected before answering request {0:?}")]
    RuntimeGone(String),
    /// The deadline passed first.
    #[error(
        "request {request_id:?} timed out: {state}; its events can be read from GET /events with Last-Event-ID: {cursor}"
    )]
    TimedOut {
        /// The input's `request_id`.
        request_id: String,
        /// Where the turn was.
        state: &'static str,
        /// Where its events start.
        cursor: String,
    },
    /// The replay ring dropped events before the follower read them.
    #[error(
        "the replay ring dropped {missed} events while request {request_id:?} was following its turn; raise LETTA_BRIDGE_REPLAY_EVENTS"
    )]
    Lagged {
        /// The input's `request_id`.
        request_id: String,
        /// How many events were lost.
        missed: u64,
    },
    /// The event log was reset (a cluster's Redis lost its data) while the
    /// turn was followed: its events are gone.
    #[error("the event log was reset while request {0:?} was following its turn; its events are lost")]
    LogReset(String),
    /// The turn ended with `stop_reason: "error"`.
    #[error("the runtime ended the turn of request {:?} with an error: {}", .0.request_id, .0.error.as_deref().unwrap_or("no error text given"))]
    Failed(Box<TurnResult>),
}

/// Where the turn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `input_accepted` with our `request_id`.
    Accepting,
    /// Accepted as `queued`: waiting for our `user_message` to start a turn.
    Queued,
    /// Our turn is running: collecting until `turn_finished`.
    Running,
}

/// One event, as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The event type.
    pub kind: &'a str,
    /// The runtime that sent it (or that the bridge event is about).
    pub runtime_id: Option<&'a str>,
    /// Its scope's agent.
    pub agent_id: Option<&'a str>,
    /// Its scope's conversation.
    pub conversation_id: Option<&'a str>,
    /// Its JSON.
    pub data: &'a [u8],
}

/// One `input` command's turn, fed event by event.
#[derive(Debug)]
pub struct Turn {
    runtime_id: String,
    request_id: String,
    agent_id: String,
    conversation_id: Option<String>,
    /// The `client_message_id`s of the command's messages.
    otids: Vec<String>,
    /// For an `approval_response`: the approval request it answers.
    answers: Option<String>,
    cursor: String,
    phase: Phase,
    disposition: Option<String>,
    text: String,
    /// `delta.id` of the last assistant message appended to `text`.
    last_message: Option<String>,
    /// `run_id` of the `requires_approval` stop reason delta, if one came.
    approval_run: Option<String>,
    event_ids: Vec<String>,
}

impl Turn {
    /// Checks that `frame` is an `input` whose turn can be followed, and
    /// gives every message a `client_message_id` (the runtime echoes it as
    /// the `otid` of the turn's `user_message`).
    pub fn expect(frame: &mut Map<String, Value>, runtime_id: &str) -> Result<Self, TurnError> {
        if frame.get("type").and_then(Value::as_str) != Some("input") {
            return Err(TurnError::NotInput);
        }
        let scope = frame.get("runtime").and_then(Value::as_object);
        let field = |name: &str| scope.and_then(|s| s.get(name)).and_then(Value::as_str).map(str::to_owned);
        let agent_id = field("agent_id").ok_or(TurnError::NoAgent)?;
        let conversation_id = field("conversation_id");
        let request_id = frame.get("request_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let payload = frame.get("payload");
        let answers = payload
            .filter(|p| p["kind"] == "approval_response")
            .map(|p| p["request_id"].as_str().unwrap_or_default().to_owned());
        Ok(Self {
            runtime_id: runtime_id.to_owned(),
            request_id,
            agent_id,
            conversation_id,
            otids: fill_client_message_ids(frame),
            answers,
            cursor: String::new(),
            phase: Phase::Accepting,
            disposition: None,
            text: String::new(),
            last_message: None,
            approval_run: None,
            event_ids: Vec::new(),
        })
    }

    /// The event id just before the command was sent.
    pub fn set_cursor(&mut self, cursor: String) {
        self.cursor = cursor;
    }

    /// One event; `Ok(Some(..))` once the turn is finished. `id` gives the
    /// event's id, asked only for events of the turn.
    pub fn on_event(&mut self, event: Seen<'_>, id: impl FnOnce() -> String) -> Result<Option<TurnResult>, TurnError> {
        if event.runtime_id != Some(self.runtime_id.as_str()) {
            return Ok(None);
        }
        if event.kind == "runtime_offline" {
            return Err(TurnError::RuntimeGone(self.request_id.clone()));
        }
        if !self.in_scope(&event) {
            return Ok(None);
        }
        match (self.phase, event.kind) {
            (Phase::Accepting, "input_accepted") => {
                let data = json(event.data);
                if data.get("request_id").and_then(Value::as_str) != Some(&self.request_id) {
                    return Ok(None);
                }
                if data.get("accepted").and_then(Value::as_bool) != Some(true) {
                    let why = data.get("error").and_then(Value::as_str).unwrap_or("no reason given").to_owned();
                    let request_id = self.request_id.clone();
                    let what = match &self.answers {
                        Some(approval) => format!("the answer {request_id:?} to approval request {approval:?}"),
                        None => format!("input {request_id:?}"),
                    };
                    return Err(TurnError::Refused { request_id, what, why });
                }
                self.disposition = data.get("disposition").and_then(Value::as_str).map(str::to_owned);
                let queued = self.disposition.as_deref() == Some("queued") && !self.otids.is_empty();
                self.phase = if queued { Phase::Queued } else { Phase::Running };
                self.event_ids.push(id());
            }
            (Phase::Accepting, kind) if self.answers.is_some() => {
                // The runtime resumes the paused turn a moment before it
                // acknowledges the approval (recorded: approval_deny's loop
                // status): those events are the turn's once it is accepted.
                self.event_ids.push(id());
                if kind == "stream_delta" {
                    self.delta(&json(event.data)["delta"]);
                }
            }
            (Phase::Queued, "stream_delta") => {
                let data = json(event.data);
                let delta = &data["delta"];
                let ours = delta["message_type"] == "user_message"
                    && delta["otid"].as_str().is_some_and(|o| self.otids.iter().any(|m| m == o));
                if ours {
                    self.phase = Phase::Running;
                    self.event_ids.push(id());
                }
            }
            (Phase::Running, kind) => {
                self.event_ids.push(id());
                match kind {
                    "stream_delta" => self.delta(&json(event.data)["delta"]),
                    "turn_finished" => return self.finished(json(event.data)).map(Some),
                    "control_request" => {
                        if let Some(approval) = PendingApproval::of(json(event.data)) {
                            return Ok(Some(self.paused(approval)));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// The error for a turn whose deadline passed.
    pub fn timed_out(&self) -> TurnError {
        let state = match self.phase {
            Phase::Accepting => "the runtime did not accept it",
            Phase::Queued => "it is still queued behind another turn",
            Phase::Running => "the turn had not finished",
        };
        TurnError::TimedOut { request_id: self.request_id.clone(), state, cursor: self.cursor.clone() }
    }

    /// The error for a follower whose log was reset.
    pub fn log_reset(&self) -> TurnError {
        TurnError::LogReset(self.request_id.clone())
    }

    /// The error for a follower the replay ring overtook.
    pub fn lagged(&self, missed: u64) -> TurnError {
        TurnError::Lagged { request_id: self.request_id.clone(), missed }
    }

    fn in_scope(&self, event: &Seen<'_>) -> bool {
        event.agent_id == Some(self.agent_id.as_str())
            && match &self.conversation_id {
                Some(c) => event.conversation_id == Some(c.as_str()),
                None => true,
            }
    }

    /// Reads a `stream_delta`'s `delta`: assistant text, or the run that
    /// stops for an approval.
    fn delta(&mut self, delta: &Value) {
        match delta["message_type"].as_str() {
            Some("assistant_message") => self.append(delta),
            Some("stop_reason") if delta["stop_reason"] == REQUIRES_APPROVAL => {
                self.approval_run = delta["run_id"].as_str().map(str::to_owned);
            }
            _ => {}
        }
    }

    /// Appends an `assistant_message` delta's text.
    fn append(&mut self, delta: &Value) {
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

    fn finished(&mut self, turn_finished: Value) -> Result<TurnResult, TurnError> {
        let field = |name: &str| turn_finished.get(name).and_then(Value::as_str).map(str::to_owned);
        let (stop_reason, run_id, error) = (field("stop_reason").unwrap_or_default(), field("run_id"), field("error"));
        let result = self.result(stop_reason, run_id, error, Some(turn_finished), None);
        if result.stop_reason == "error" {
            return Err(TurnError::Failed(Box::new(result)));
        }
        Ok(result)
    }

    /// The turn stopped at an approval request: the runtime sends nothing
    /// more until it is answered.
    fn paused(&mut self, approval: PendingApproval) -> TurnResult {
        let run_id = self.approval_run.take();
        self.result(REQUIRES_APPROVAL.to_owned(), run_id, None, None, Some(Box::new(approval)))
    }

    fn result(
        &mut self,
        stop_reason: String,
        run_id: Option<String>,
        error: Option<String>,
        turn_finished: Option<Value>,
        approval: Option<Box<PendingApproval>>,
    ) -> TurnResult {
        TurnResult {
            request_id: std::mem::take(&mut self.request_id),
            runtime_id: std::mem::take(&mut self.runtime_id),
            agent_id: std::mem::take(&mut self.agent_id),
            conversation_id: self.conversation_id.take(),
            disposition: self.disposition.take(),
            stop_reason,
            run_id,
            text: std::mem::take(&mut self.text),
            error,
            cursor: std::mem::take(&mut self.cursor),
            event_ids: std::mem::take(&mut self.event_ids),
            turn_finished,
            approval,
        }
    }
}

/// An event's JSON (events are compact JSON objects; anything else reads as `null`).
fn json(data: &[u8]) -> Value {
    serde_json::from_slice(data).unwrap_or(Value::Null)
}

/// Gives every message of a `create_message` payload a `client_message_id`,
/// and returns them all.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> Map<String, Value> {
        json!({"type": "input", "request_id": "r1", "runtime": {"agent_id": "a", "conversation_id": "c"},
               "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi"}]}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn feed(turn: &mut Turn, kind: &str, data: Value) -> Result<Option<TurnResult>, TurnError> {
        let data = data.to_string();
        let seen = Seen {
            kind,
            runtime_id: Some("rt"),
            agent_id: Some("a"),
            conversation_id: Some("c"),
            data: data.as_bytes(),
        };
        turn.on_event(seen, || format!("e-{kind}"))
    }

    #[test]
    fn a_started_turn_collects_text_until_turn_finished() {
        let mut frame = input();
        let mut turn = Turn::expect(&mut frame, "rt").unwrap();
        assert!(frame["payload"]["messages"][0]["client_message_id"].is_string());
        let accepted = json!({"request_id": "r1", "accepted": true, "disposition": "started"});
        assert!(feed(&mut turn, "input_accepted", accepted).unwrap().is_none());
        let delta = |t: &str| json!({"delta": {"id": "m1", "message_type": "assistant_message", "content": [{"type": "text", "text": t}]}});
        feed(&mut turn, "stream_delta", delta("Hel")).unwrap();
        feed(&mut turn, "stream_delta", delta("lo")).unwrap();
        let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn"})).unwrap().unwrap();
        assert_eq!((done.text.as_str(), done.stop_reason.as_str()), ("Hello", "end_turn"));
        assert_eq!(done.event_ids.len(), 4);
    }

    #[test]
    fn a_queued_turn_starts_with_its_own_user_message() {
        let mut frame = input();
        let mut turn = Turn::expect(&mut frame, "rt").unwrap();
        let otid = frame["payload"]["messages"][0]["client_message_id"].as_str().unwrap().to_owned();
        feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": true, "disposition": "queued"}))
            .unwrap();
        assert!(feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn"})).unwrap().is_none(), "not ours");
        feed(&mut turn, "stream_delta", json!({"delta": {"message_type": "user_message", "otid": otid}})).unwrap();
        let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn"})).unwrap().unwrap();
        assert_eq!(done.disposition.as_deref(), Some("queued"));
    }

    #[test]
    fn refusals_errors_and_offline_runtimes_end_the_turn_with_an_error() {
        let mut turn = Turn::expect(&mut input(), "rt").unwrap();
        let refused =
            feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": false, "error": "busy"}));
        assert!(matches!(refused, Err(TurnError::Refused { why, .. }) if why == "busy"));
        let mut turn = Turn::expect(&mut input(), "rt").unwrap();
        feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": true})).unwrap();
        let failed = feed(&mut turn, "turn_finished", json!({"stop_reason": "error", "error": "boom"}));
        assert!(matches!(failed, Err(TurnError::Failed(t)) if t.error.as_deref() == Some("boom")));
        let mut turn = Turn::expect(&mut input(), "rt").unwrap();
        assert!(matches!(feed(&mut turn, "runtime_offline", json!({})), Err(TurnError::RuntimeGone(_))));
    }

    fn approval(decision: Value) -> Map<String, Value> {
        json!({"type": "input", "request_id": "r2", "runtime": {"agent_id": "a", "conversation_id": "c"},
               "payload": {"kind": "approval_response", "request_id": "perm-call-1", "decision": decision}})
        .as_object()
        .unwrap()
        .clone()
    }

    /// The runtime's approval request for tool call `call-1` (fixture `approval_allow`).
    fn control_request() -> Value {
        json!({"type": "control_request", "request_id": "perm-call-1", "agent_id": "a", "conversation_id": "c",
               "request": {"subtype": "can_use_tool", "tool_name": "Bash", "tool_call_id": "call-1",
                           "input": {"command": "touch x"}, "blocked_path": null,
                           "permission_suggestions": [{"id": "save-default", "text": "Yes, and don't ask again"}]}})
    }

    #[test]
    fn a_turn_stops_at_an_approval_request_with_the_request_to_answer() {
        let mut turn = Turn::expect(&mut input(), "rt").unwrap();
        feed(&mut turn, "input_accepted", json!({"request_id": "r1", "accepted": true, "disposition": "started"}))
            .unwrap();
        let call = json!({"message_type": "approval_request_message", "run_id": "run-1",
                          "tool_call": {"tool_call_id": "call-1", "name": "Bash", "arguments": "{}"}});
        feed(&mut turn, "stream_delta", json!({ "delta": call })).unwrap();
        let stop = json!({"message_type": "stop_reason", "stop_reason": "requires_approval", "run_id": "run-1"});
        feed(&mut turn, "stream_delta", json!({ "delta": stop })).unwrap();
        let other = json!({"type": "control_request", "request_id": "x", "request": {"subtype": "other"}});
        assert!(feed(&mut turn, "control_request", other).unwrap().is_none(), "only can_use_tool stops the turn");
        let paused = feed(&mut turn, "control_request", control_request()).unwrap().expect("the turn stops");
        assert_eq!((paused.stop_reason.as_str(), paused.run_id.as_deref()), ("requires_approval", Some("run-1")));
        assert!(paused.turn_finished.is_none());
        let approval = paused.approval.expect("the pending request");
        assert_eq!(approval.request_id, "perm-call-1");
        assert_eq!((approval.tool_name.as_deref(), approval.tool_call_id.as_deref()), (Some("Bash"), Some("call-1")));
        assert_eq!(approval.input, json!({"command": "touch x"}));
        assert_eq!(approval.permission_suggestions[0].id, "save-default");
        assert_eq!(paused.event_ids.len(), 5, "input_accepted through the control_request");
    }

    #[test]
    fn an_approval_is_followed_from_its_acceptance_to_the_end_of_the_turn_it_continues() {
        let mut frame = approval(json!({"behavior": "allow"}));
        let mut turn = Turn::expect(&mut frame, "rt").unwrap();
        let status = json!({"loop_status": {"status": "WAITING_ON_APPROVAL"}});
        feed(&mut turn, "update_loop_status", status).unwrap();
        // The runtime acknowledges an approval without a disposition.
        feed(&mut turn, "input_accepted", json!({"request_id": "r2", "accepted": true})).unwrap();
        let text = json!({"delta": {"id": "m2", "message_type": "assistant_message", "content": [{"type": "text", "text": "Done."}]}});
        feed(&mut turn, "stream_delta", text).unwrap();
        let done = feed(&mut turn, "turn_finished", json!({"stop_reason": "end_turn", "run_id": "run-2"})).unwrap();
        let done = done.expect("the continued turn finished");
        assert_eq!((done.text.as_str(), done.stop_reason.as_str()), ("Done.", "end_turn"));
        assert_eq!(done.disposition, None);
        assert!(done.approval.is_none() && done.turn_finished.is_some());
        assert_eq!(done.event_ids.len(), 4, "the loop status before the acknowledgement counts");
        assert_eq!(done.event_ids[0], "e-update_loop_status");
    }

    #[test]
    fn an_approval_the_runtime_no_longer_waits_for_is_refused_naming_the_request() {
        let mut turn = Turn::expect(&mut approval(json!({"behavior": "allow"})), "rt").unwrap();
        let refused = json!({"request_id": "r2", "accepted": false, "error": "Approval request is no longer pending"});
        let err = feed(&mut turn, "input_accepted", refused).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"perm-call-1\"") && text.contains("no longer pending"), "{text}");
    }

    #[test]
    fn only_inputs_with_an_agent_can_be_followed() {
        let mut sync = json!({"type": "sync"}).as_object().unwrap().clone();
        assert!(matches!(Turn::expect(&mut sync, "rt"), Err(TurnError::NotInput)));
        let mut bare = json!({"type": "input", "runtime": {"conversation_id": "c"}}).as_object().unwrap().clone();
        assert!(matches!(Turn::expect(&mut bare, "rt"), Err(TurnError::NoAgent)));
    }
}
