//! The rules every command frame obeys, whichever endpoint it came from:
//! its head (`type`, `request_id`, and the request-id form reserved for the
//! client sockets' namespaces), which types need a runtime scope, which the
//! runtime answers by `request_id`. Who may send what is
//! [`super::access`]'s.
//!
//! The typed bodies of the command endpoints are in [`super::bodies`]; both
//! they and free-form frames (`POST /commands`, whose documented shapes are
//! here) become a wire frame through this file.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::frame::is_valid_type;
use super::scope::Scope;
use super::wire;

/// Longest `request_id` accepted from a client.
pub const MAX_REQUEST_ID_LEN: usize = 256;

/// The conversation commands: the commands of one conversation (metrics
/// count them by type; every other type as `other`).
pub const CONVERSATION_COMMANDS: &[&str] =
    &[wire::INPUT, wire::SYNC, wire::ABORT_MESSAGE, wire::CHANGE_DEVICE_STATE, wire::APPROVAL_RESPONSE];

/// Conversation commands the runtime drops unanswered without a runtime
/// scope it accepts (letta-code 0.32.18: `isRuntimeScope`).
pub const SCOPED_COMMANDS: &[&str] = &[wire::INPUT, wire::SYNC, wire::ABORT_MESSAGE, wire::CHANGE_DEVICE_STATE];

/// Commands the runtime never answers by `request_id` (letta-code 0.32.18):
/// `?wait=true` on one answers `202` once it is written.
pub const UNANSWERED_COMMANDS: &[&str] = &[wire::CHANGE_DEVICE_STATE];

/// True for the frames that answer a command by its `request_id`.
pub fn is_reply(kind: &str) -> bool {
    kind == wire::INPUT_ACCEPTED || wire::is_response(kind)
}

/// True when the runtime answers a command of this type by its `request_id`.
pub fn is_answered(kind: &str) -> bool {
    !UNANSWERED_COMMANDS.contains(&kind)
}

/// Why a command body was refused (answered as 422).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// A typed endpoint got a frame of another type.
    #[error("`type` must be {expected:?} on this endpoint (got {got:?}); use POST /commands for other frames")]
    WrongType {
        /// The endpoint's type.
        expected: &'static str,
        /// The body's type.
        got: String,
    },
    /// `type` is missing or not a safe token.
    #[error("`type` must be a string of 1-128 characters of [A-Za-z0-9_.:-]")]
    BadType,
    /// `request_id` is not a short printable string.
    #[error("`request_id` must be a string of 1-{MAX_REQUEST_ID_LEN} printable characters")]
    BadRequestId,
    /// `request_id` has the form of a client socket's namespace.
    #[error(
        "`request_id`s that start with `c` and 32 hex digits and a colon (`c<32 hex>:…`) are reserved for the bridge's client sockets; choose another"
    )]
    ReservedRequestId,
    /// Any other rule, stated.
    #[error("{0}")]
    Invalid(&'static str),
}

/// The head every command frame has: its `type` and `request_id`, read
/// from a frame whose `request_id` was filled in by [`Command::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The frame's `type`.
    pub kind: String,
    /// The frame's `request_id` (the client's, or generated).
    pub request_id: String,
}

/// A command frame that passed the rules: a JSON object with a valid head,
/// ready to be sent as it is.
#[derive(Debug, Clone)]
pub struct Command {
    head: Head,
    frame: Map<String, Value>,
}

impl Command {
    /// Checks a frame's head, filling in a missing `request_id`; a
    /// `request_id` of the reserved form ([`socket_namespace`]) is refused.
    pub fn new(mut frame: Map<String, Value>) -> Result<Self, CommandError> {
        let kind = match frame.get("type") {
            Some(Value::String(t)) if is_valid_type(t) => t.clone(),
            _ => return Err(CommandError::BadType),
        };
        let request_id = match frame.get("request_id") {
            None | Some(Value::Null) => {
                let id = new_request_id();
                frame.insert("request_id".into(), id.clone().into());
                id
            }
            Some(Value::String(id)) if socket_namespace(id).is_some() => return Err(CommandError::ReservedRequestId),
            Some(Value::String(id)) if valid_request_id(id) => id.clone(),
            Some(_) => return Err(CommandError::BadRequestId),
        };
        Ok(Self { head: Head { kind, request_id }, frame })
    }

    /// A free-form frame (`POST /commands`): a valid head, and the runtime
    /// scope that conversation commands need.
    pub fn free_form(frame: Map<String, Value>) -> Result<Self, CommandError> {
        let command = Self::new(frame)?;
        let kind = command.kind();
        if kind == wire::APPROVAL_RESPONSE {
            return Err(CommandError::Invalid(
                "an approval response is an `input` frame whose payload.kind is `approval_response`: use POST /approval",
            ));
        }
        if SCOPED_COMMANDS.contains(&kind) && command.scope().is_none() {
            return Err(CommandError::Invalid(
                "this command needs `runtime` with a non-empty `conversation_id` and an `agent_id` (a non-empty string or null); the runtime drops it otherwise",
            ));
        }
        Ok(command)
    }

    /// The frame's `type`.
    pub fn kind(&self) -> &str {
        &self.head.kind
    }

    /// The frame's `request_id`.
    pub fn request_id(&self) -> &str {
        &self.head.request_id
    }

    /// The head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The runtime scope it names, when the runtime accepts it.
    pub fn scope(&self) -> Option<Scope> {
        Scope::of_frame(&self.frame)
    }

    /// The frame, to read or amend before it is sent (the head stays).
    pub fn frame_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.frame
    }

    /// The frame as it will be sent.
    pub fn frame(&self) -> &Map<String, Value> {
        &self.frame
    }

    /// The command as a client socket sends it: its `request_id` under the
    /// socket's `namespace` ([`new_socket_namespace`]), so that the reply
    /// finds its way back to that socket.
    pub fn within(mut self, namespace: &str) -> Self {
        let id = format!("{namespace}{}", self.head.request_id);
        self.frame.insert("request_id".into(), id.clone().into());
        self.head.request_id = id;
        self
    }

    /// The frame as sent on the socket.
    pub fn to_text(&self) -> String {
        serde_json::to_string(&self.frame).expect("JSON maps serialise")
    }
}

/// 1-256 characters, none of them control characters.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_REQUEST_ID_LEN && !id.chars().any(char::is_control)
}

/// A fresh request id (`req-` + UUID v4).
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

/// Hex digits of a client socket's namespace: 128 bits, so that nobody
/// guesses another socket's (122 of them random, UUID v4).
const NAMESPACE_HEX: usize = 32;

/// The namespace a client socket puts before its commands' ids
/// (`c<32 hex>:`), when `request_id` starts with one. That form is the
/// bridge's: [`Command::new`] refuses it from every caller, so only a
/// socket's own commands carry it ([`Command::within`]).
pub fn socket_namespace(request_id: &str) -> Option<&str> {
    let (head, _) = request_id.split_once(':')?;
    let hex = head.strip_prefix('c')?;
    (hex.len() == NAMESPACE_HEX && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| &request_id[..head.len() + 1])
}

/// A new namespace for a client socket.
pub fn new_socket_namespace() -> String {
    format!("c{}:", uuid::Uuid::new_v4().simple())
}

/// The documented shape of `POST /commands`: any v2 frame. The four
/// conversation commands carry a runtime scope the runtime accepts; a
/// top-level `approval_response` is not a frame (approvals are `input`s).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only: bodies are read as JSON maps
pub enum GenericCommand {
    /// A conversation command, with its scope.
    Conversation(ScopedFrame),
    /// Any other command.
    Other(OtherFrame),
}

/// `input`, `sync`, `abort_message` or `change_device_state`, sent as is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"type": "sync", "runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"}, "recover_approvals": false})))]
pub struct ScopedFrame {
    /// The frame's `type`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(input|sync|abort_message|change_device_state)$")]
    pub kind: String,
    /// A scope the runtime takes.
    pub runtime: Scope,
    /// Correlates the runtime's reply; generated when absent.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    /// Every other field goes to the runtime untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Any other frame type, sent as is; the client token may send only the
/// types and fields of its allow-list (docs/api.md).
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"type": "list_in_directory", "path": "/home"})))]
pub struct OtherFrame {
    #[serde(rename = "type")]
    #[schema(
        pattern = "^(?!(input|sync|abort_message|change_device_state|approval_response)$)[A-Za-z0-9_.:-]{1,128}$"
    )]
    /// The frame's `type`.
    pub kind: String,
    /// Correlates the runtime's reply; generated when absent.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    /// Every other field goes to the runtime untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn free_form(v: Value) -> Result<Command, CommandError> {
        Command::free_form(v.as_object().unwrap().clone())
    }

    #[test]
    fn free_form_conversation_frames_need_a_scope_the_runtime_takes() {
        let scope = json!({"agent_id": "a", "conversation_id": "c"});
        assert!(free_form(json!({"type": "sync"})).is_err());
        assert!(free_form(json!({"type": "sync", "runtime": {"agent_id": "a"}})).is_err());
        assert!(free_form(json!({"type": "change_device_state", "runtime": {"conversation_id": "c"}})).is_err());
        assert!(free_form(json!({"type": "approval_response", "runtime": scope})).is_err());
        assert!(free_form(json!({"type": "sync", "runtime": scope})).is_ok());
        assert!(free_form(json!({"type": "sync", "runtime": {"agent_id": null, "conversation_id": "c"}})).is_ok());
        assert!(free_form(json!({"type": "read_file", "path": "/x"})).is_ok(), "other commands carry no scope");
    }

    #[test]
    fn a_head_needs_a_valid_type_and_request_id_and_gets_one_generated() {
        let ok = free_form(json!({"type": "read_file", "path": "/x"})).unwrap();
        assert!(ok.request_id().starts_with("req-"));
        assert_eq!(ok.frame["request_id"], ok.request_id());
        let kept = free_form(json!({"type": "read_file", "request_id": "mine"})).unwrap();
        assert_eq!(kept.request_id(), "mine");
        for bad in [
            json!({}),
            json!({"type": 3}),
            json!({"type": "a b"}),
            json!({"type": "x", "request_id": 5}),
            json!({"type": "x", "request_id": ""}),
        ] {
            assert!(free_form(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_socket_namespace_form_is_refused_to_callers_and_set_only_by_within() {
        let namespace = new_socket_namespace();
        assert_eq!(socket_namespace(&format!("{namespace}sync-1")), Some(namespace.as_str()));
        let forged = json!({"type": "sync", "request_id": format!("{namespace}sync-1")});
        assert_eq!(free_form(forged).err(), Some(CommandError::ReservedRequestId));
        let mine = free_form(json!({"type": "read_file", "request_id": "sync-1"})).unwrap().within(&namespace);
        assert_eq!(mine.request_id(), format!("{namespace}sync-1"));
        assert_eq!(mine.frame()["request_id"], mine.request_id());
        for other in ["req-1", "c12:x", "c0123456789ab:x", &format!("c{}:x", "z".repeat(32)), "perm-abc"] {
            assert_eq!(socket_namespace(other), None, "{other}");
        }
    }

    #[test]
    fn replies_are_recognised() {
        assert!(is_reply("input_accepted") && is_reply("sync_response") && is_reply("read_file_response"));
        assert!(!is_reply("stream_delta") && !is_reply("turn_finished"));
        assert!(is_answered("sync") && !is_answered("change_device_state"));
    }
}
