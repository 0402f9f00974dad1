//! The typed bodies of the command endpoints (`POST /input`, `/approval`,
//! `/sync`, `/abort`). Each
//! typed body keeps unknown fields (`extra`) and sends them on untouched:
//! the runtime evolves faster than this bridge. The rules a frame obeys
//! once built are in [`super::commands`]; which fields the client token may
//! set, in [`super::access`] (unknown ones need the admin token).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::commands::{Command, CommandError};
use super::scope::RuntimeScope;

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
    /// Where it applies: both ids are required.
    pub runtime: RuntimeScope,
    /// A new message, or an approval answer.
    pub payload: InputPayload,
    /// Fields not listed here go to the runtime untouched (the client token
    /// may set only those of its allow-list, docs/api.md).
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

/// A `create_message` payload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateMessage {
    /// At least one message.
    #[schema(min_items = 1)]
    pub messages: Vec<InputMessage>,
    /// Fields not listed here go to the runtime untouched (the client token
    /// may set only those of its allow-list, docs/api.md).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of a `create_message` payload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InputMessage {
    /// Who speaks.
    pub role: MessageRole,
    /// Text, or a list of content parts such as `{"type":"text","text":"…"}`.
    pub content: MessageContent,
    /// Your id for the message; the runtime echoes it as the `otid` of its `user_message` (generated with `wait=completion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// Fields not listed here go to the runtime untouched (the client token
    /// may set only those of its allow-list, docs/api.md).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    /// The user.
    User,
    /// The system.
    System,
    /// The assistant.
    Assistant,
}

/// A message's content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts, e.g. `{"type":"text","text":"…"}`.
    Parts(Vec<Map<String, Value>>),
}

/// Answer to a tool approval request (a `control_request` event with
/// `request.subtype: "can_use_tool"`): a `decision`, or an `error`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    /// The `request_id` of the `control_request` being answered: `perm-<tool_call_id>`
    /// (also `approval.request_id` of a `requires_approval` turn result).
    #[schema(min_length = 1, example = "perm-call_abc123")]
    pub request_id: String,
    /// Allow or deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApprovalDecision>,
    /// Or: why no decision could be made; the runtime treats it as a denial
    /// with this text as the message the agent sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Fields not listed here go to the runtime untouched (the client token
    /// may set only those of its allow-list, docs/api.md).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Allow (optionally with changed input) or deny (with a message).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "behavior", rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// Run the tool; its output goes to the model and the turn goes on.
    Allow {
        /// A note for the agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Run it with these arguments instead of `request.input` (an object, as `request.input` is).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updated_input: Option<Map<String, Value>>,
        /// Ids of `request.permission_suggestions` to grant as well (e.g.
        /// `save-default`: do not ask again for this command in this project).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selected_permission_suggestion_ids: Option<Vec<String>>,
    },
    /// Do not run the tool: the model is told `message` as the tool's
    /// result (a `tool_return_message` with `status: "error"`), and the turn goes on.
    Deny {
        /// Why; the agent sees it.
        message: String,
    },
}

/// `POST /approval`: an `input` frame whose payload is an approval response,
/// the answer to a `control_request` (`can_use_tool`) of the same scope.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(
    json!({
        "runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"},
        "payload": {"request_id": "perm-call_abc123", "decision": {"behavior": "allow"}}
    }),
    json!({
        "runtime": {"agent_id": "agent-local-1", "conversation_id": "local-conv-1"},
        "payload": {"request_id": "perm-call_abc123", "decision": {"behavior": "deny", "message": "Not now."}}
    })
))]
pub struct ApprovalCommand {
    /// Optional; must be `input` when given.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^input$")]
    pub kind: Option<String>,
    /// Correlates the runtime's reply (`input_accepted`; not the approval
    /// request's id, which goes in `payload.request_id`); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    /// The scope of the `control_request` (its `runtime`): both ids are required.
    pub runtime: RuntimeScope,
    /// The answer.
    pub payload: ApprovalResponse,
    /// Fields not listed here go to the runtime untouched (the client token
    /// may set only those of its allow-list, docs/api.md).
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
    /// Correlates the runtime's reply; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    /// Where it applies: both ids are required.
    pub runtime: RuntimeScope,
    /// Also replay pending approval requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_approvals: Option<bool>,
    /// Send `update_device_status` even when unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_device_status: Option<bool>,
    /// Fields not listed here go to the runtime untouched (the client token
    /// may set only those of its allow-list, docs/api.md).
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
    /// Correlates the runtime's reply; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,256}$")]
    pub request_id: Option<String>,
    /// Where it applies: both ids are required.
    pub runtime: RuntimeScope,
    /// Abort only this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Fields not listed here go to the runtime untouched (the client token
    /// may set only those of its allow-list, docs/api.md).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A typed command body: its wire `type`, its scope, and its own checks.
pub trait TypedCommand: Serialize {
    /// The wire `type` of the frame it becomes.
    const TYPE: &'static str;
    /// The `type` the client gave, if any.
    fn given_type(&self) -> Option<&str>;
    /// The body's runtime scope.
    fn runtime(&self) -> &RuntimeScope;
    /// Checks beyond the shape and the scope.
    fn check(&self) -> Result<(), CommandError> {
        Ok(())
    }
}

impl TypedCommand for InputCommand {
    const TYPE: &'static str = "input";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn runtime(&self) -> &RuntimeScope {
        &self.runtime
    }
    fn check(&self) -> Result<(), CommandError> {
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
    fn runtime(&self) -> &RuntimeScope {
        &self.runtime
    }
    fn check(&self) -> Result<(), CommandError> {
        check_approval(&self.payload)
    }
}

impl TypedCommand for SyncCommand {
    const TYPE: &'static str = "sync";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn runtime(&self) -> &RuntimeScope {
        &self.runtime
    }
}

impl TypedCommand for AbortCommand {
    const TYPE: &'static str = "abort_message";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn runtime(&self) -> &RuntimeScope {
        &self.runtime
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

/// Turns a typed body into a command: checks it, sets `type`, fills
/// `request_id` (and `payload.kind` for approvals).
pub fn typed_command<C: TypedCommand>(body: &C) -> Result<Command, CommandError> {
    if let Some(got) = body.given_type().filter(|t| *t != C::TYPE) {
        return Err(CommandError::WrongType { expected: C::TYPE, got: got.to_owned() });
    }
    if body.runtime().scope().is_none() {
        return Err(CommandError::Invalid("runtime.agent_id and runtime.conversation_id must not be empty"));
    }
    body.check()?;
    let Value::Object(mut frame) = serde_json::to_value(body).expect("command bodies serialise") else {
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
    Command::new(frame)
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

    fn frame(c: Command) -> Value {
        serde_json::from_str(&c.to_text()).unwrap()
    }

    #[test]
    fn conversation_commands_need_both_ids_of_their_scope() {
        let body = |runtime: Value| json!({"runtime": runtime, "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}});
        assert!(serde_json::from_value::<InputCommand>(body(json!({"agent_id": "a"}))).is_err());
        assert!(serde_json::from_value::<SyncCommand>(json!({})).is_err());
        let empty = input(body(json!({"agent_id": "a", "conversation_id": ""})));
        assert!(matches!(typed_command(&empty), Err(CommandError::Invalid(_))));
        let sync: SyncCommand =
            serde_json::from_value(json!({"runtime": {"agent_id": "", "conversation_id": "c"}})).unwrap();
        assert!(matches!(typed_command(&sync), Err(CommandError::Invalid(_))));
    }

    #[test]
    fn input_frame_gets_type_request_id_and_keeps_unknown_fields() {
        let cmd = input(json!({
            "runtime": {"agent_id": "a", "conversation_id": "c", "z": 1},
            "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "hi", "m": 2}], "p": 3},
            "future_field": true
        }));
        let f = frame(typed_command(&cmd).unwrap());
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
        assert_eq!(typed_command(&cmd).unwrap().request_id(), "mine");
        let cmd = input(
            json!({"type": "sync", "runtime": scope(), "payload": {"kind": "create_message", "messages": [{"role": "user", "content": "x"}]}}),
        );
        assert!(matches!(typed_command(&cmd), Err(CommandError::WrongType { .. })));
    }

    #[test]
    fn empty_messages_and_half_approvals_are_refused() {
        let cmd = input(json!({"runtime": scope(), "payload": {"kind": "create_message", "messages": []}}));
        assert!(matches!(typed_command(&cmd), Err(CommandError::Invalid(_))));
        let a: ApprovalCommand =
            serde_json::from_value(json!({"runtime": scope(), "payload": {"request_id": "ap"}})).unwrap();
        assert!(matches!(typed_command(&a), Err(CommandError::Invalid(_))));
    }

    #[test]
    fn approval_frames_are_inputs_with_an_approval_payload() {
        let a: ApprovalCommand = serde_json::from_value(
            json!({"runtime": scope(), "payload": {"request_id": "ap", "decision": {"behavior": "deny", "message": "no"}}}),
        )
        .unwrap();
        let f = frame(typed_command(&a).unwrap());
        assert_eq!(f["type"], "input");
        assert_eq!(f["payload"]["kind"], "approval_response");
        assert_eq!(f["payload"]["decision"], json!({"behavior": "deny", "message": "no"}));
    }
}
