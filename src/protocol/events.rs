//! Schemas of the runtime's events as subscribers receive them (the frame
//! plus `runtime_id`), for the OpenAPI document: low-code tools map fields
//! from these. Events are never parsed into these types (they pass through
//! untouched); any other type arrives as a [`RuntimeEvent`].

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub use super::bridge::{Lagged, Reset, RuntimeOffline, RuntimeOnline};
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
    }
);

runtime_event!(
    /// The agent loop's state (idle, sending, waiting for approval, …).
    UpdateLoopStatus, "^update_loop_status$" {
        /// e.g. `{"status":"WAITING_ON_INPUT"}`.
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

/// Any runtime event (every type not listed, e.g. terminal output, approval
/// requests, `*_response` replies): the runtime's frame plus `runtime_id`.
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
