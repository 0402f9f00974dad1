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
//!
//! The runtime may name the messages a turn owned (PROTOCOL.md §9; see
//! `owner`): `turn_finished.client_message_ids` (newer runtimes), or the
//! turn's `run_id` listed with one of ours in
//! `loop_status.client_message_ids_by_run_id` (0.32.18 already sends it).
//! When it does, that decides, for an input with messages: a
//! `turn_finished` that names ours ends our turn, also while it is still
//! `queued` (several queued inputs run as one turn that echoes only the
//! first one's `otid`, or an input failed before its turn started) — the
//! events since the last turn started or ended are then its events; one
//! whose `client_message_ids` name only others is not ours, even while ours
//! seems to run. A `loop_status.failure` (`{stage, code, message,
//! http_status, retryable, client_message_ids}`, newer runtimes) is the
//! turn's when it names our messages, or names none and comes during the
//! turn; the result carries it as sent. Without those fields the rules
//! above hold unchanged.

mod collected;
mod flat;
mod owner;
mod progress;
mod result;

use serde_json::{Map, Value};

use collected::Collected;
pub use flat::{APPROVAL_REQUESTED, Flat, Flats, TURN_FINISHED_FLAT};
use owner::{Owner, Owners};
pub use progress::Progress;
pub use result::{PendingApproval, REQUIRES_APPROVAL, TokenUsage, TurnError, TurnFailure, TurnResult};

/// Where the turn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `input_accepted` with our `request_id`.
    Accepting,
    /// Accepted as `queued`: waiting for our `user_message` to start a turn
    /// (or for a `turn_finished` that names our messages).
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
    /// The `client_message_id`s of the command's messages, and what the
    /// runtime said about whose its runs are.
    owners: Owners,
    /// For an `approval_response`: the approval request it answers.
    answers: Option<String>,
    cursor: String,
    phase: Phase,
    disposition: Option<String>,
    collected: Collected,
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
            owners: Owners::new(fill_client_message_ids(frame)),
            answers,
            cursor: String::new(),
            phase: Phase::Accepting,
            disposition: None,
            collected: Collected::default(),
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
                let queued = self.disposition.as_deref() == Some("queued") && self.owners.any();
                self.phase = if queued { Phase::Queued } else { Phase::Running };
                self.collected.event_ids.push(id());
                self.collected.accepted();
            }
            (Phase::Accepting, kind) if self.answers.is_some() => {
                // The runtime resumes the paused turn a moment before it
                // acknowledges the approval (recorded: approval_deny's loop
                // status): those events are the turn's once it is accepted.
                self.collected.event_ids.push(id());
                self.read(kind, event.data);
            }
            (Phase::Queued, kind) => return self.queued(kind, event.data, id),
            (Phase::Running, kind) => {
                self.collected.event_ids.push(id());
                return self.running(kind, event.data);
            }
            _ => {}
        }
        Ok(None)
    }

    /// Queued behind other turns: the events in scope are collected as a
    /// turn that may be ours, started over at every turn's start (a
    /// `user_message`) and end. Ours once our `user_message` echo starts it
    /// (then it runs), or once its `turn_finished` (or, for an approval
    /// request, its run) names our messages.
    fn queued(
        &mut self,
        kind: &str,
        data: &[u8],
        id: impl FnOnce() -> String,
    ) -> Result<Option<TurnResult>, TurnError> {
        match kind {
            "stream_delta" => {
                let data = json(data);
                let delta = &data["delta"];
                if delta["message_type"] == "user_message" {
                    self.collected.restart();
                    if delta["otid"].as_str().is_some_and(|o| self.owners.is_ours(o)) {
                        self.phase = Phase::Running;
                    }
                }
                self.collected.event_ids.push(id());
                self.collected.delta(delta);
            }
            "turn_finished" => {
                let data = json(data);
                if self.owners.of_turn(&data) != Owner::Ours {
                    self.collected.restart();
                    return Ok(None);
                }
                self.collected.event_ids.push(id());
                return self.finished(data).map(Some);
            }
            "control_request" => {
                self.collected.event_ids.push(id());
                let run = self.collected.approval_run.as_deref();
                if run.is_some_and(|run| self.owners.of_run(run) == Owner::Ours)
                    && let Some(approval) = PendingApproval::of(json(data))
                {
                    return Ok(Some(self.paused(approval)));
                }
            }
            kind => {
                self.collected.event_ids.push(id());
                self.read(kind, data);
            }
        }
        Ok(None)
    }

    /// Our turn runs: everything in scope is its, up to its `turn_finished`
    /// (one that names only other messages is not ours, and what was
    /// collected was that other turn's) or the approval request it stops at.
    fn running(&mut self, kind: &str, data: &[u8]) -> Result<Option<TurnResult>, TurnError> {
        match kind {
            "turn_finished" => {
                let data = json(data);
                if self.owners.of_turn(&data) == Owner::Other {
                    self.collected.restart();
                    return Ok(None);
                }
                return self.finished(data).map(Some);
            }
            "control_request" => {
                if let Some(approval) = PendingApproval::of(json(data)) {
                    return Ok(Some(self.paused(approval)));
                }
            }
            kind => self.read(kind, data),
        }
        Ok(None)
    }

    /// Reads the events that add to the turn (deltas, loop statuses);
    /// others are not parsed.
    fn read(&mut self, kind: &str, data: &[u8]) {
        if matches!(kind, "stream_delta" | "update_loop_status") {
            self.collected.read(kind, &json(data), &mut self.owners);
        }
    }

    /// The assistant's text and reasoning so far, once the turn is known to
    /// be ours and running (`None` before: what a queued input collects may
    /// still turn out to be another turn's).
    pub fn so_far(&self) -> Option<(&str, &str)> {
        let ours = self.phase == Phase::Running || (self.phase == Phase::Accepting && self.answers.is_some());
        ours.then_some((self.collected.text.as_str(), self.collected.reasoning.as_str()))
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
        let run_id = self.collected.approval_run.take();
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
        let collected = std::mem::take(&mut self.collected);
        TurnResult {
            id: String::new(),
            request_id: std::mem::take(&mut self.request_id),
            runtime_id: std::mem::take(&mut self.runtime_id),
            agent_id: std::mem::take(&mut self.agent_id),
            conversation_id: self.conversation_id.take(),
            disposition: self.disposition.take(),
            stop_reason,
            run_id,
            text: collected.text,
            error,
            cursor: std::mem::take(&mut self.cursor),
            event_ids: collected.event_ids,
            turn_finished,
            approval,
            failure: collected.failure,
            reasoning: collected.reasoning,
            usage: collected.usage,
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
mod tests;
