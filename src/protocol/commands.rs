//! Commands clients send to the runtime: typed v2 shapes for the endpoints
//! that have one, and the rules every frame obeys (type names, request ids,
//! which commands need the admin token).
//!
//! Each typed body keeps unknown fields (`extra`) and sends them on untouched:
//! the runtime evolves faster than this bridge.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Longest `request_id` accepted from a client.
pub const MAX_REQUEST_ID_LEN: usize = 256;

/// Commands an ordinary client token may send. Everything else (files,
/// terminals, memory, secrets, runtime_start, ...) needs the admin token.
pub const CONVERSATION_COMMANDS: &[&str] =
    &["input", "sync", "abort_message", "change_device_state", "approval_response"];

/// True when `kind` needs the admin token.
pub fn requires_admin(kind: &str) -> bool {
    !CONVERSATION_COMMANDS.contains(&kind)
}

/// True for the frames that answer a command by its `request_id`.
pub fn is_reply(kind: &str) -> bool {
    kind == "input_accepted" || kind.ends_with("_response")
}

/// Why a command body was refused (answered as 422).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("`type` must be {expected:?} on this endpoint (got {got:?}); use POST /commands for other frames")]
    WrongType { expected: &'static str, got: String },
    #[error("`type` must be a string of 1-128 characters of [A-Za-z0-9_.:-]")]
    BadType,
    #[error("`request_id` must be a string of 1-{MAX_REQUEST_ID_LEN} printable characters")]
    BadRequestId,
    #[error("{0}")]
    Invalid(&'static str),
}

/// Where a command applies on the runtime. Required on every conversation
/// command: the runtime silently drops an `input`, `sync` or `abort_message`
/// without both ids (letta-code 0.32.18 logs it as unparseable and never
/// answers), so the bridge refuses it with `422` instead.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuntimeScope {
    /// Agent id, e.g. `agent-local-…`.
    #[schema(min_length = 1)]
    pub agent_id: String,
    /// Conversation id, e.g. `local-conv-1` (`default` is the agent's default conversation).
    #[schema(min_length = 1)]
    pub conversation_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RuntimeScope {
    fn check(&self) -> Result<(), CommandError> {
        if self.agent_id.is_empty() || self.conversation_id.is_empty() {
            return Err(CommandError::Invalid("runtime.agent_id and runtime.conversation_id must not be empty"));
        }
        Ok(())
    }
}

/// `POST /input`: a v2 `input` frame (the bridge adds `type` and `request_id`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"},
    "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "Hello"}]}
})))]
pub struct InputCommand {
    /// Optional; must be `input` when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^input$")]
    pub kind: Option<String>,
    /// Correlates the runtime's `input_accepted`; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    pub runtime: RuntimeScope,
    pub payload: InputPayload,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What an `input` carries.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputPayload {
    /// New user message(s) for the agent.
    CreateMessage(CreateMessage),
    /// The answer to an approval request.
    ApprovalResponse(ApprovalResponse),
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateMessage {
    /// At least one message.
    #[schema(min_items = 1)]
    pub messages: Vec<InputMessage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InputMessage {
    pub role: MessageRole,
    /// Text, or a list of content parts such as `{"type":"text","text":"…"}`.
    pub content: MessageContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    System,
    Assistant,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<Map<String, Value>>),
}

/// Answer to an approval request: a `decision`, or an `error`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    /// The `request_id` of the approval request being answered.
    #[schema(min_length = 1)]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApprovalDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "behavior", rename_all = "snake_case")]
pub enum ApprovalDecision {
    Allow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updated_input: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selected_permission_suggestion_ids: Option<Vec<String>>,
    },
    Deny {
        message: String,
    },
}

/// `POST /approval`: an `input` frame whose payload is an approval response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({
    "runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"},
    "payload": {"request_id": "approval-7", "decision": {"behavior": "allow"}}
})))]
pub struct ApprovalCommand {
    /// Optional; must be `input` when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^input$")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    pub runtime: RuntimeScope,
    pub payload: ApprovalResponse,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /sync`: ask the runtime to replay its state, answered by `sync_response`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"}})))]
pub struct SyncCommand {
    /// Optional; must be `sync` when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^sync$")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    pub runtime: RuntimeScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_approvals: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_device_status: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /abort`: an `abort_message` frame, answered by `abort_message_response`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"}})))]
pub struct AbortCommand {
    /// Optional; must be `abort_message` when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^abort_message$")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    pub runtime: RuntimeScope,
    /// Abort only this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A typed command body: its wire `type`, and its own checks.
pub trait TypedCommand: Serialize {
    const TYPE: &'static str;
    fn given_type(&self) -> Option<&str>;
    fn check(&self) -> Result<(), CommandError> {
        Ok(())
    }
}

impl TypedCommand for InputCommand {
    const TYPE: &'static str = "input";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn check(&self) -> Result<(), CommandError> {
        self.runtime.check()?;
        match &self.payload {
            InputPayload::CreateMessage(m) if m.messages.is_empty() => {
                Err(CommandError::Invalid("payload.messages must hold at least one message"))
            }
            InputPayload::ApprovalResponse(a) => check_approval(a),
            InputPayload::CreateMessage(_) => Ok(()),
        }
    }
}

impl TypedCommand for ApprovalCommand {
    const TYPE: &'static str = "input";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn check(&self) -> Result<(), CommandError> {
        self.runtime.check()?;
        check_approval(&self.payload)
    }
}

impl TypedCommand for SyncCommand {
    const TYPE: &'static str = "sync";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn check(&self) -> Result<(), CommandError> {
        self.runtime.check()
    }
}

impl TypedCommand for AbortCommand {
    const TYPE: &'static str = "abort_message";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn check(&self) -> Result<(), CommandError> {
        self.runtime.check()
    }
}

fn check_approval(a: &ApprovalResponse) -> Result<(), CommandError> {
    if a.request_id.is_empty() {
        return Err(CommandError::Invalid("payload.request_id must name the approval request"));
    }
    match (&a.decision, &a.error) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        _ => Err(CommandError::Invalid("payload needs exactly one of `decision` or `error`")),
    }
}

/// Turns a typed body into the wire frame: checks it, sets `type`, and fills
/// `request_id` (and `payload.kind` for approvals).
pub fn typed_frame<C: TypedCommand>(cmd: &C) -> Result<Map<String, Value>, CommandError> {
    if let Some(got) = cmd.given_type().filter(|t| *t != C::TYPE) {
        return Err(CommandError::WrongType { expected: C::TYPE, got: got.to_owned() });
    }
    cmd.check()?;
    let Value::Object(mut frame) = serde_json::to_value(cmd).expect("command bodies serialise") else {
        unreachable!("command bodies are structs")
    };
    frame.insert("type".into(), C::TYPE.into());
    // `InputCommand` payloads carry their `kind` tag; approval bodies do not.
    if let Some(Value::Object(payload)) = frame.get_mut("payload")
        && C::TYPE == "input"
        && !payload.contains_key("kind")
    {
        payload.insert("kind".into(), "approval_response".into());
    }
    fill_request_id(&mut frame)?;
    Ok(frame)
}

/// Conversation commands the runtime drops unanswered without a runtime
/// scope it accepts (letta-code 0.32.18: `isRuntimeScope`).
const SCOPED_COMMANDS: &[&str] = &["input", "sync", "abort_message", "change_device_state"];

/// Commands the runtime never answers by `request_id` (letta-code 0.32.18):
/// `?wait=true` on one answers `202` once it is written.
pub const UNANSWERED_COMMANDS: &[&str] = &["change_device_state"];

/// Checks a free-form frame for `POST /commands` and fills its `request_id`.
pub fn generic_frame(mut frame: Map<String, Value>) -> Result<Map<String, Value>, CommandError> {
    let kind = match frame.get("type") {
        Some(Value::String(t)) if crate::protocol::frame::is_valid_type(t) => t.as_str(),
        _ => return Err(CommandError::BadType),
    };
    if kind == "approval_response" {
        return Err(CommandError::Invalid(
            "an approval response is an `input` frame whose payload.kind is `approval_response`: use POST /approval",
        ));
    }
    if SCOPED_COMMANDS.contains(&kind) && !frame.get("runtime").is_some_and(is_runtime_scope) {
        return Err(CommandError::Invalid(
            "this command needs `runtime` with a non-empty `conversation_id` and an `agent_id` (a non-empty string or null); the runtime drops it otherwise",
        ));
    }
    fill_request_id(&mut frame)?;
    Ok(frame)
}

/// The runtime's own test of a scope: a non-empty `conversation_id`, and an
/// `agent_id` that is null or a non-empty string.
fn is_runtime_scope(scope: &Value) -> bool {
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    non_empty(&scope["conversation_id"]) && scope.get("agent_id").is_some_and(|a| a.is_null() || non_empty(a))
}

fn fill_request_id(frame: &mut Map<String, Value>) -> Result<(), CommandError> {
    match frame.get("request_id") {
        None | Some(Value::Null) => {
            frame.insert("request_id".into(), new_request_id().into());
            Ok(())
        }
        Some(Value::String(id)) if valid_request_id(id) => Ok(()),
        Some(_) => Err(CommandError::BadRequestId),
    }
}

/// 1-256 characters, none of them control characters.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_REQUEST_ID_LEN && !id.chars().any(char::is_control)
}

/// The documented shape of `POST /commands`: any v2 frame. The four
/// conversation commands carry a runtime scope the runtime accepts; a
/// top-level `approval_response` is not a frame (approvals are `input`s).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only: bodies are read as JSON maps
pub enum GenericCommand {
    Conversation(ScopedFrame),
    Other(OtherFrame),
}

/// `input`, `sync`, `abort_message` or `change_device_state`, sent as is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"type": "change_device_state", "runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"}, "payload": {"mode": "default"}})))]
pub struct ScopedFrame {
    #[serde(rename = "type")]
    #[schema(pattern = "^(input|sync|abort_message|change_device_state)$")]
    pub kind: String,
    pub runtime: FrameScope,
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    /// Every other field goes to the runtime untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A scope as the runtime tests it: a conversation, and an agent or null.
#[derive(Debug, Serialize, ToSchema)]
pub struct FrameScope {
    #[schema(min_length = 1)]
    pub conversation_id: String,
    /// An agent id, or null for the runtime's default.
    #[schema(min_length = 1, required = true)]
    pub agent_id: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Any other frame type, sent as is; types other than the conversation
/// ones need the admin token.
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"type": "list_in_directory", "path": "/home"})))]
pub struct OtherFrame {
    #[serde(rename = "type")]
    #[schema(
        pattern = "^(?!(input|sync|abort_message|change_device_state|approval_response)$)[A-Za-z0-9_.:-]{1,128}$"
    )]
    pub kind: String,
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    /// Every other field goes to the runtime untouched.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A fresh request id (`req-` + UUID v4).
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Value {
        json!({"agent_id": "a", "conversation_id": "c"})
    }

    fn input(v: Value) -> InputCommand {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn conversation_commands_need_both_ids_of_their_scope() {
        let body = |runtime: Value| json!({"runtime": runtime, "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}});
        assert!(serde_json::from_value::<InputCommand>(body(json!({"agent_id": "a"}))).is_err());
        assert!(serde_json::from_value::<SyncCommand>(json!({})).is_err());
        let empty = input(body(json!({"agent_id": "a", "conversation_id": ""})));
        assert!(matches!(typed_frame(&empty), Err(CommandError::Invalid(_))));
        let sync: SyncCommand =
            serde_json::from_value(json!({"runtime": {"agent_id": "", "conversation_id": "c"}})).unwrap();
        assert!(matches!(typed_frame(&sync), Err(CommandError::Invalid(_))));
    }

    #[test]
    fn input_frame_gets_type_request_id_and_keeps_unknown_fields() {
        let cmd = input(json!({
            "runtime": {"agent_id": "a", "conversation_id": "c", "z": 1},
            "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi", "m": 2}], "p": 3},
            "future_field": true
        }));
        let f = typed_frame(&cmd).unwrap();
        assert_eq!(f["type"], "input");
        assert!(f["request_id"].as_str().unwrap().starts_with("req-"));
        assert_eq!(f["future_field"], true);
        assert_eq!(f["runtime"]["z"], 1);
        assert_eq!(f["payload"]["p"], 3);
        assert_eq!(f["payload"]["kind"], "create_message");
        assert_eq!(f["payload"]["messages"][0]["m"], 2);
    }

    #[test]
    fn a_given_request_id_is_kept_and_a_wrong_type_refused() {
        let cmd = input(
            json!({"request_id": "mine", "runtime": scope(), "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}}),
        );
        assert_eq!(typed_frame(&cmd).unwrap()["request_id"], "mine");
        let cmd = input(
            json!({"type": "sync", "runtime": scope(), "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}}),
        );
        assert!(matches!(typed_frame(&cmd), Err(CommandError::WrongType { .. })));
    }

    #[test]
    fn empty_messages_and_half_approvals_are_refused() {
        let cmd = input(json!({"runtime": scope(), "payload": {"kind": "create_message", "messages": []}}));
        assert!(matches!(typed_frame(&cmd), Err(CommandError::Invalid(_))));
        let a: ApprovalCommand =
            serde_json::from_value(json!({"runtime": scope(), "payload": {"request_id": "ap"}})).unwrap();
        assert!(matches!(typed_frame(&a), Err(CommandError::Invalid(_))));
    }

    #[test]
    fn approval_frames_are_inputs_with_an_approval_payload() {
        let a: ApprovalCommand = serde_json::from_value(
            json!({"runtime": scope(), "payload": {"request_id": "ap", "decision": {"behavior": "deny", "message": "no"}}}),
        )
        .unwrap();
        let f = typed_frame(&a).unwrap();
        assert_eq!(f["type"], "input");
        assert_eq!(f["payload"]["kind"], "approval_response");
        assert_eq!(f["payload"]["decision"], json!({"behavior": "deny", "message": "no"}));
    }

    #[test]
    fn generic_conversation_frames_need_a_scope_the_runtime_takes() {
        let frame = |v: Value| generic_frame(v.as_object().unwrap().clone());
        assert!(frame(json!({"type": "sync"})).is_err());
        assert!(frame(json!({"type": "sync", "runtime": {"agent_id": "a"}})).is_err());
        assert!(frame(json!({"type": "change_device_state", "runtime": {"conversation_id": "c"}})).is_err());
        assert!(frame(json!({"type": "approval_response", "runtime": scope()})).is_err());
        assert!(frame(json!({"type": "sync", "runtime": scope()})).is_ok());
        assert!(frame(json!({"type": "sync", "runtime": {"agent_id": null, "conversation_id": "c"}})).is_ok());
        assert!(frame(json!({"type": "read_file", "path": "/x"})).is_ok(), "other commands carry no scope");
    }

    #[test]
    fn generic_frames_need_a_valid_type_and_request_id() {
        let ok = generic_frame(json!({"type": "read_file", "path": "/x"}).as_object().unwrap().clone()).unwrap();
        assert!(ok["request_id"].is_string());
        for bad in [
            json!({}),
            json!({"type": 3}),
            json!({"type": "a b"}),
            json!({"type": "x", "request_id": 5}),
            json!({"type": "x", "request_id": ""}),
        ] {
            assert!(generic_frame(bad.as_object().unwrap().clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_conversation_commands_are_open_to_clients() {
        for kind in ["input", "sync", "abort_message", "change_device_state", "approval_response"] {
            assert!(!requires_admin(kind), "{kind}");
        }
        for kind in [
            "read_file",
            "write_file",
            "terminal_spawn",
            "secret_apply",
            "list_memory",
            "runtime_start",
            "anything_new",
        ] {
            assert!(requires_admin(kind), "{kind}");
        }
    }

    #[test]
    fn replies_are_recognised() {
        assert!(is_reply("input_accepted") && is_reply("sync_response") && is_reply("read_file_response"));
        assert!(!is_reply("stream_delta") && !is_reply("turn_finished"));
    }
}
