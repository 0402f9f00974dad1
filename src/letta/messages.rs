//! What `POST /v1/environments/{connectionId}/messages` takes (Letta's
//! `environments.sendMessage`), and the runtime's `input` commands it
//! becomes: one `create_message` with the user messages, one
//! `approval_response` per approval, each answering `perm-<tool_call_id>`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::protocol::bodies::MessageContent;
use crate::protocol::{Command, CommandError, wire};

/// The conversation a message goes to when it names none: the agent's own.
pub const DEFAULT_CONVERSATION: &str = "default";

/// A user message's only role.
const USER: &str = "user";

/// An approval message's only `type`.
const APPROVAL: &str = "approval";

/// What a denial tells the agent when the client gave no reason.
const DENIED: &str = "Denied by the user";

/// `POST /v1/environments/{connectionId}/messages`: new user messages, or
/// answers to approval requests.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// User messages, or approval answers (each sent as its own `input`).
    #[schema(min_items = 1)]
    pub messages: Vec<EnvironmentMessage>,
    /// The agent (default: the runtime's default agent).
    pub agent_id: Option<String>,
    /// The conversation (default: `default`, the agent's default conversation).
    pub conversation_id: Option<String>,
}

/// One entry of `messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EnvironmentMessage {
    /// Answers to approval requests.
    Approval(ApprovalMessage),
    /// A user message.
    User(UserMessage),
}

/// A user message, as Letta's API takes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserMessage {
    /// Always `user`.
    #[schema(pattern = "^user$")]
    pub role: String,
    /// Text, or a list of content parts such as `{"type":"text","text":"…"}`.
    pub content: MessageContent,
    /// Your id for the message (the runtime echoes it as the `otid` of its `user_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// Letta's own message id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otid: Option<String>,
}

/// Answers to approval requests.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApprovalMessage {
    /// Always `approval`.
    #[serde(rename = "type")]
    #[schema(pattern = "^approval$")]
    pub kind: String,
    /// One answer per tool call.
    #[schema(min_items = 1)]
    pub approvals: Vec<EnvironmentApproval>,
}

/// The answer to one tool call's approval request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnvironmentApproval {
    /// The tool call (its approval request is `perm-<tool_call_id>`).
    #[schema(min_length = 1)]
    pub tool_call_id: String,
    /// Run it, or not.
    pub approve: bool,
    /// Why not (the agent sees it).
    pub reason: Option<String>,
    /// Run it with this input instead.
    pub updated_input: Option<Map<String, Value>>,
}

/// Why a message body cannot be sent (answered as 422).
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// A rule of the body, stated.
    #[error("{0}")]
    Invalid(String),
    /// A frame it became broke a command rule.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl SendMessage {
    /// The `input` commands this body becomes, in order.
    pub fn commands(self) -> Result<Vec<Command>, MessageError> {
        let runtime = json!({
            "agent_id": self.agent_id.filter(|a| !a.is_empty()),
            "conversation_id": self.conversation_id.filter(|c| !c.is_empty()).unwrap_or_else(|| DEFAULT_CONVERSATION.into()),
        });
        let frames = input_frames(self.messages, &runtime)?;
        Ok(frames.into_iter().map(Command::new).collect::<Result<_, _>>()?)
    }
}

/// The `input` frames for a message body: one `create_message` with the
/// user messages (if any), then one `approval_response` per approval.
fn input_frames(messages: Vec<EnvironmentMessage>, runtime: &Value) -> Result<Vec<Map<String, Value>>, MessageError> {
    let mut users = Vec::new();
    let mut frames = Vec::new();
    for message in messages {
        match message {
            EnvironmentMessage::User(user) if user.role != USER => {
                return Err(MessageError::Invalid(format!("a message's role must be `user` (got {:?})", user.role)));
            }
            EnvironmentMessage::User(user) => users.push(user),
            EnvironmentMessage::Approval(approval) if approval.kind != APPROVAL => {
                return Err(MessageError::Invalid(format!(
                    "an approval message's type must be `approval` (got {:?})",
                    approval.kind
                )));
            }
            EnvironmentMessage::Approval(approval) => {
                for a in approval.approvals {
                    if a.tool_call_id.is_empty() {
                        return Err(MessageError::Invalid("each approval needs a `tool_call_id`".into()));
                    }
                    let decision = match (a.approve, a.updated_input) {
                        (true, Some(input)) => json!({"behavior": "allow", "updated_input": input}),
                        (true, None) => json!({"behavior": "allow"}),
                        (false, _) => json!({"behavior": "deny", "message": a.reason.as_deref().unwrap_or(DENIED)}),
                    };
                    let request_id = wire::permission_request_id(&a.tool_call_id);
                    frames.push(frame(
                        runtime,
                        json!({"kind": wire::APPROVAL_RESPONSE, "request_id": request_id, "decision": decision}),
                    ));
                }
            }
        }
    }
    if !users.is_empty() {
        frames.insert(0, frame(runtime, json!({"kind": wire::CREATE_MESSAGE, "messages": users})));
    }
    if frames.is_empty() {
        return Err(MessageError::Invalid("messages must hold at least one message".into()));
    }
    Ok(frames)
}

fn frame(runtime: &Value, payload: Value) -> Map<String, Value> {
    let Value::Object(frame) = json!({"type": wire::INPUT, "runtime": runtime, "payload": payload}) else {
        unreachable!()
    };
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(v: Value) -> Vec<EnvironmentMessage> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn approvals_become_approval_responses_to_their_permission_requests() {
        let runtime = json!({"agent_id": "a", "conversation_id": "c"});
        let body = messages(json!([{"type": "approval", "approvals": [
            {"tool_call_id": "t1", "approve": true},
            {"tool_call_id": "t2", "approve": false, "reason": "no"}
        ]}]));
        let frames = input_frames(body, &runtime).unwrap();
        assert_eq!(
            frames[0]["payload"],
            json!({"kind": "approval_response", "request_id": "perm-t1", "decision": {"behavior": "allow"}})
        );
        assert_eq!(frames[1]["payload"]["decision"], json!({"behavior": "deny", "message": "no"}));
        let text = messages(json!([{"role": "user", "content": "hi", "client_message_id": "m1"}]));
        let frames = input_frames(text, &runtime).unwrap();
        assert_eq!(frames[0]["payload"]["kind"], "create_message");
        assert_eq!(
            frames[0]["payload"]["messages"][0],
            json!({"role": "user", "content": "hi", "client_message_id": "m1"})
        );
        assert!(input_frames(messages(json!([{"role": "system", "content": "x"}])), &runtime).is_err());
        assert!(input_frames(Vec::new(), &runtime).is_err());
        assert!(serde_json::from_value::<Vec<EnvironmentMessage>>(json!([{}])).is_err(), "neither shape");
    }

    #[test]
    fn every_frame_a_message_body_becomes_is_one_a_client_token_may_send() {
        let body: SendMessage = serde_json::from_value(json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "client_message_id": "m1", "otid": "o1"},
            {"type": "approval", "approvals": [
                {"tool_call_id": "t1", "approve": true, "updated_input": {"command": "ls"}},
                {"tool_call_id": "t2", "approve": false, "reason": "no"}
            ]}
        ]}))
        .unwrap();
        let commands = body.commands().unwrap();
        assert_eq!(commands.len(), 3);
        for command in commands {
            assert_eq!(command.frame()["runtime"], json!({"agent_id": null, "conversation_id": "default"}));
            assert_eq!(command.authorize(&crate::protocol::Role::Client, "dev"), Ok(()), "{}", command.to_text());
        }
    }
}
