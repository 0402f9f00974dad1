//! The wire names, in one place: frame types, the `input` payload kinds,
//! the request-id forms the runtime and Letta's clients share, the relay's
//! bookkeeping frames and the bridge's own event names. Doors and rules
//! name them through these constants and never spell them.

/// A message or an approval answer for a conversation (the runtime's
/// `input` command).
pub const INPUT: &str = "input";
/// The runtime's reply to an `input` (`accepted`, and `error` when not).
pub const INPUT_ACCEPTED: &str = "input_accepted";
/// Starts (or resumes) an agent's conversation on the runtime.
pub const RUNTIME_START: &str = "runtime_start";
/// The runtime's reply to a `runtime_start`.
pub const RUNTIME_START_RESPONSE: &str = "runtime_start_response";
/// Asks the runtime for a conversation's state again.
pub const SYNC: &str = "sync";
/// Stops a conversation's turn.
pub const ABORT_MESSAGE: &str = "abort_message";
/// Which conversation the device shows, its directory, its permission mode.
pub const CHANGE_DEVICE_STATE: &str = "change_device_state";
/// The runtime asks one client something (a tool approval: answered by an
/// `input` whose payload is an `approval_response`).
pub const CONTROL_REQUEST: &str = "control_request";
/// The runtime asks the client that declared a tool to run it.
pub const EXTERNAL_TOOL_CALL_REQUEST: &str = "external_tool_call_request";
/// A piece of a turn's output.
pub const STREAM_DELTA: &str = "stream_delta";
/// The end of a turn.
pub const TURN_FINISHED: &str = "turn_finished";

/// The type of every other reply is its command's type with this suffix
/// (`sync` → `sync_response`).
pub const RESPONSE_SUFFIX: &str = "_response";

/// `<kind>_response`: the type of the reply to a command of type `kind`.
pub fn response_type(kind: &str) -> String {
    format!("{kind}{RESPONSE_SUFFIX}")
}

/// True for the types of replies and answers that end in `_response`.
pub fn is_response(kind: &str) -> bool {
    kind.ends_with(RESPONSE_SUFFIX)
}

/// `input` payload: new user messages.
pub const CREATE_MESSAGE: &str = "create_message";
/// `input` payload: the answer to an approval request.
pub const APPROVAL_RESPONSE: &str = "approval_response";

/// The runtime's approval requests are `perm-<tool call id>`.
pub const PERMISSION_PREFIX: &str = "perm-";

/// The `request_id` of the approval request for tool call `tool_call_id`.
pub fn permission_request_id(tool_call_id: &str) -> String {
    format!("{PERMISSION_PREFIX}{tool_call_id}")
}

/// A liveness probe (a relay client's, answered with [`PONG`]).
pub const PING: &str = "ping";
/// The answer to a [`PING`].
pub const PONG: &str = "pong";
/// A relay client's acknowledgement of a frame's `seq`.
pub const ACK: &str = "ack";
/// A frame that says what went wrong, with a `message`.
pub const ERROR: &str = "error";

/// The bridge's event: a runtime connected.
pub const RUNTIME_ONLINE: &str = "runtime_online";
/// The bridge's event: a runtime's socket closed.
pub const RUNTIME_OFFLINE: &str = "runtime_offline";
/// The bridge's event: a resume cursor was not honoured, or the log restarted.
pub const RESET: &str = "reset";
/// The bridge's event: a subscriber fell behind the replay ring.
pub const LAGGED: &str = "lagged";
/// The bridge's event: the end user's token of this stream expired or was
/// revoked; the stream ends (resume with a new ticket).
pub const REAUTH: &str = "reauth";
