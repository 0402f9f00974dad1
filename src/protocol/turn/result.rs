//! What following a turn yields: the finished (or stopped) turn that
//! `?wait=completion` answers with, and why a turn could not be followed.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::protocol::events::PermissionSuggestion;

/// The `stop_reason` of a turn that stopped to ask for a tool approval.
pub const REQUIRES_APPROVAL: &str = "requires_approval";

/// A finished turn, or one stopped at an approval request, as
/// `POST /input?wait=completion` and `POST /approval?wait=completion` answer it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnResult {
    /// The bridge's id of this turn (`tn_…`): `GET /turns/{id}` answers
    /// this body again for as long as the turn is kept (docs/api.md,
    /// "Turns that outlive a request").
    pub id: String,
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
    /// What the runtime reported about the turn's failure
    /// (`update_loop_status`'s `loop_status.failure`, runtimes newer than
    /// 0.32.18), as it sent it; absent when it reported none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TurnFailure>, nullable = false)]
    pub failure: Option<Value>,
    /// The `reasoning_message` deltas' text (for the OpenAI-compatible door;
    /// not part of this body).
    #[serde(skip)]
    pub reasoning: String,
    /// The model's token usage over the turn, when the runtime reported it
    /// (`usage_statistics` deltas; for the OpenAI-compatible door).
    #[serde(skip)]
    pub usage: Option<TokenUsage>,
}

/// Tokens the model used, summed over a turn's `usage_statistics` deltas
/// (one per model call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Tokens of the prompts.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum, as the runtime counted it.
    pub total_tokens: u64,
}

impl TokenUsage {
    /// This usage plus a `usage_statistics` delta's counts (missing ones are 0).
    pub fn plus(self, delta: &Value) -> Self {
        let count = |name: &str| delta[name].as_u64().unwrap_or(0);
        let (prompt, completion) = (count("prompt_tokens"), count("completion_tokens"));
        let total = delta["total_tokens"].as_u64().unwrap_or(prompt + completion);
        Self {
            prompt_tokens: self.prompt_tokens + prompt,
            completion_tokens: self.completion_tokens + completion,
            total_tokens: self.total_tokens + total,
        }
    }
}

/// The sum of two usages (of two parts of a turn).
impl std::ops::Add for TokenUsage {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            prompt_tokens: self.prompt_tokens + other.prompt_tokens,
            completion_tokens: self.completion_tokens + other.completion_tokens,
            total_tokens: self.total_tokens + other.total_tokens,
        }
    }
}

impl TurnResult {
    /// True when the runtime reported the turn's failure as `retryable`.
    pub fn retryable(&self) -> bool {
        self.failure.as_ref().is_some_and(|f| f["retryable"] == true)
    }

    /// The error text of a failed turn: `turn_finished.error`, and what its
    /// `failure` names (code, stage, HTTP status, retryable).
    pub fn error_text(&self) -> String {
        let mut text = self.error.as_deref().unwrap_or("no error text given").to_owned();
        let Some(failure) = &self.failure else { return text };
        let mut notes = Vec::new();
        if let Some(code) = failure["code"].as_str() {
            notes.push(format!("failure {code:?}"));
        }
        if let Some(stage) = failure["stage"].as_str() {
            notes.push(format!("at stage {stage:?}"));
        }
        if let Some(status) = failure["http_status"].as_u64() {
            notes.push(format!("HTTP {status}"));
        }
        if self.retryable() {
            notes.push("retryable".to_owned());
        }
        if !notes.is_empty() {
            text.push_str(&format!(" ({})", notes.join(", ")));
        }
        text
    }
}

/// A failed turn as the runtime reports it (`loop_status.failure`, runtimes
/// newer than 0.32.18; every field optional, others passed on as sent).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnFailure {
    /// Where the turn failed.
    pub stage: Option<String>,
    /// A machine-readable failure code.
    pub code: Option<String>,
    /// What went wrong, for a human.
    pub message: Option<String>,
    /// The HTTP status of the failed request to the model or server, if one failed.
    pub http_status: Option<u16>,
    /// True when sending the same input again may succeed (the `502` then has `Retry-After`).
    pub retryable: Option<bool>,
    /// The `client_message_id`s of the inputs the failure is about.
    pub client_message_ids: Option<Vec<String>>,
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
    #[error("the runtime ended the turn of request {:?} with an error: {}", .0.request_id, .0.error_text())]
    Failed(Box<TurnResult>),
}

impl TurnError {
    /// Why a turn was not followed to a good end, in one word (a trace's `outcome`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotInput => "not_input",
            Self::NoAgent => "no_agent",
            Self::Refused { .. } => "refused",
            Self::RuntimeGone(_) => "runtime_gone",
            Self::TimedOut { .. } => "timed_out",
            Self::Lagged { .. } => "lagged",
            Self::LogReset(_) => "log_reset",
            Self::Failed(_) => "error",
        }
    }
}
