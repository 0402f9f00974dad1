//! `POST /input`: a new message for the agent (or, as on the wire, an
//! approval answer), its payload and messages.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::TypedCommand;
use super::approval::ApprovalResponse;
use crate::protocol::commands::CommandError;
use crate::protocol::scope::RuntimeScope;

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
    #[serde(deserialize_with = "super::named_tag::required")]
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
            InputPayload::ApprovalResponse(a) => a.check(),
            InputPayload::CreateMessage(_) => Ok(()),
        }
    }
}
