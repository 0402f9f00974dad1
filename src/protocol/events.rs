//! Schemas of the runtime's events as subscribers receive them (the frame
//! plus `runtime_id`), for the OpenAPI document: low-code tools map fields
//! from these. Events are never parsed into these types (they pass through
//! untouched); any other type arrives as a [`RuntimeEvent`].

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use super::bridge::{Lagged, Reauth, Reset, RuntimeOffline, RuntimeOnline};
pub use super::scope::EventScope;

macro_rules! runtime_event {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            #[serde(rename = "type")]
            #[schema(pattern = $kind)]
            /// The event type (also the SSE `event:` name).
            pub kind: String,
            /// The runtime (its deviceId) that sent the event; added by the bridge.
            pub runtime_id: String,
            /// Where it applies.
            pub runtime: Option<EventScope>,
            /// Per-runtime sequence number.
            pub event_seq: Option<u64>,
            /// When the runtime emitted it (RFC 3339).
            pub emitted_at: Option<String>,
            /// `<type>:<seq>:<uuid>`: use it to drop duplicates.
            pub idempotency_key: Option<String>,
            $($(#[$fdoc])* pub $field: $ty,)*
            /// Fields not listed here pass through untouched.
            #[serde(flatten)]
            pub other: Map<String, Value>,
        }
    };
}

runtime_event!(
    /// A streamed Letta message: assistant text, reasoning, tool call or
    /// return, usage, stop reason, … (`delta.message_type` tells which).
    StreamDelta, "^stream_delta$" {
        /// The message piece, e.g. `{"id","message_type":"assistant_message","content":[{"type":"text","text":"Hel"}],"run_id","seq_id"}`.
        delta: Map<String, Value>,
        /// The subagent that streamed it, if not the main agent.
        subagent_id: Option<String>,
    }
);

runtime_event!(
    /// A turn ended.
    TurnFinished, "^turn_finished$" {
        /// The turn.
        turn_id: Option<String>,
        /// `end_turn`, `cancelled`, `error`, …
        stop_reason: String,
        /// The run that ended.
        run_id: Option<String>,
        /// What went wrong, when it failed.
        error: Option<String>,
        /// Runtimes newer than 0.32.18: the `client_message_id`s of the
        /// inputs the turn owned (`?wait=completion` matches its turn by them).
        client_message_ids: Option<Vec<String>>,
    }
);

runtime_event!(
    /// The reply to `input` (`POST /input`, `POST /approval`).
    InputAccepted, "^input_accepted$" {
        /// The command it answers.
        request_id: String,
        /// False when the runtime refused the input (see `error`).
        accepted: bool,
        /// `started` or `queued`.
        disposition: Option<String>,
        /// What went wrong, when it failed.
        error: Option<String>,
    }
);

runtime_event!(
    /// The reply to `sync`, after the state events.
    SyncResponse, "^sync_response$" {
        /// The command it answers.
        request_id: String,
        /// True when the command succeeded.
        success: bool,
        /// What went wrong, when it failed.
        error: Option<String>,
    }
);

runtime_event!(
    /// The reply to `abort_message`.
    AbortMessageResponse, "^abort_message_response$" {
        /// The command it answers.
        request_id: String,
        /// True when a running turn was aborted.
        aborted: bool,
        /// True when the command succeeded.
        success: bool,
        /// What went wrong, when it failed.
        error: Option<String>,
        /// Runtimes newer than 0.32.18: `interrupted`, `joined`,
        /// `already_settled`, `queue_fenced` or `not_applicable`.
        outcome: Option<String>,
        /// Runtimes newer than 0.32.18 (with `wait_for_settlement`): the turn settled.
        lease_settled: Option<bool>,
        /// Runtimes newer than 0.32.18 (with `pause_queue`): the queue is paused.
        queue_paused: Option<bool>,
    }
);

runtime_event!(
    /// The agent loop's state (idle, sending, waiting for approval, …).
    UpdateLoopStatus, "^update_loop_status$" {
        /// e.g. `{"status":"WAITING_ON_INPUT","active_run_ids":[],
        /// "client_message_ids_by_run_id":{"local-run-1":["cm-…"]}}`; runtimes
        /// newer than 0.32.18 add `failure` (`{stage, code, message,
        /// http_status, retryable, client_message_ids}`) after a failed turn.
        loop_status: Value,
    }
);

runtime_event!(
    /// The device's state: cwd, permission mode, supported commands, …
    UpdateDeviceStatus, "^update_device_status$" {
        /// e.g. cwd, permission mode, supported commands.
        device_status: Value,
    }
);

runtime_event!(
    /// Queued messages and removals.
    UpdateQueue, "^update_queue$" {
        /// The queued messages.
        queue: Value,
        /// Transitions: entries that left the queue.
        removed: Option<Value>,
    }
);

runtime_event!(
    /// Subagent snapshots.
    UpdateSubagentState, "^update_subagent_state$" {
        /// Snapshots of the subagents.
        subagents: Value,
    }
);

runtime_event!(
    /// The runtime asks a client something and waits for the answer. With
    /// `request.subtype: "can_use_tool"` it is a tool approval request: the
    /// turn is paused (its loop status is `WAITING_ON_APPROVAL`) until a client
    /// answers with `POST /approval`, `payload.request_id` set to this
    /// `request_id`. Sent after the `stream_delta`s `approval_request_message`
    /// and `stop_reason` (`requires_approval`).
    ControlRequest, "^control_request$" {
        /// `perm-<tool_call_id>` for a tool approval: the `payload.request_id` of the answer.
        request_id: String,
        /// What is asked.
        request: CanUseTool,
        /// The agent (also in `runtime`).
        agent_id: Option<String>,
        /// The conversation (also in `runtime`).
        conversation_id: Option<String>,
    }
);

/// The question of a tool approval request (`control_request.request`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CanUseTool {
    /// `can_use_tool` for a tool approval.
    #[schema(pattern = "^can_use_tool$")]
    pub subtype: String,
    /// The tool, e.g. `Bash`.
    pub tool_name: String,
    /// The tool's arguments as an object, e.g. `{"command":"touch notes.txt","description":"…"}`.
    #[schema(value_type = Object)]
    pub input: Value,
    /// The model's tool call id.
    pub tool_call_id: String,
    /// Standing permissions the approval may also grant.
    pub permission_suggestions: Option<Vec<PermissionSuggestion>>,
    /// The path outside the allowed folders the call would touch, if that is why it asks.
    pub blocked_path: Option<String>,
    /// File edits the call would make, for edit tools.
    #[schema(value_type = Option<Vec<Object>>)]
    pub diffs: Option<Value>,
    /// Fields not listed here pass through untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A standing permission an approval can grant ("don't ask again for …").
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct PermissionSuggestion {
    /// Its id, for `decision.selected_permission_suggestion_ids`, e.g. `save-default`.
    pub id: String,
    /// What it grants, in words.
    #[serde(default)]
    pub text: Option<String>,
    /// Fields not listed here pass through untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

runtime_event!(
    /// A `stream_delta` announcing a tool call that needs approval
    /// (`delta.message_type: "approval_request_message"`); the
    /// `control_request` to answer follows. One of the shapes of `StreamDelta`.
    ApprovalRequestDelta, "^stream_delta$" {
        /// The tool call.
        delta: ApprovalRequestMessage,
        /// The subagent that made the call, if not the main agent.
        subagent_id: Option<String>,
    }
);

/// The `delta` of an `ApprovalRequestDelta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalRequestMessage {
    /// `approval_request_message`.
    #[schema(pattern = "^approval_request_message$")]
    pub message_type: String,
    /// The message id.
    pub id: Option<String>,
    /// The run that made the call.
    pub run_id: Option<String>,
    /// Position in the run's stream.
    pub seq_id: Option<u64>,
    /// The call.
    pub tool_call: ToolCallRequest,
    /// Fields not listed here pass through untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A tool call as an `approval_request_message` carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCallRequest {
    /// The model's tool call id (the approval request is `perm-<tool_call_id>`).
    pub tool_call_id: String,
    /// The tool, e.g. `Bash`.
    pub name: String,
    /// The arguments as a JSON string, e.g. `{"command":"touch notes.txt"}`.
    pub arguments: String,
}

/// Any runtime event (every type not listed, e.g. terminal output,
/// `*_response` replies): the runtime's frame plus `runtime_id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuntimeEvent {
    /// The event type (also the SSE `event:` name).
    #[serde(rename = "type")]
    pub kind: String,
    /// The runtime (its deviceId) that sent the event; added by the bridge.
    pub runtime_id: String,
    /// The runtime's fields, untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}
