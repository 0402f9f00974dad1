//! `POST /approval`: the answer to a tool approval request (`control_request`
//! `can_use_tool`), a decision or an error.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::TypedCommand;
use crate::protocol::commands::CommandError;
use crate::protocol::scope::RuntimeScope;

/// Answer to a tool approval request (a `control_request` event with
/// `request.subtype: "can_use_tool"`): a `decision`, or an `error`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    /// The `request_id` of the `control_request` being answered: `perm-<tool_call_id>`
    /// (also `approval.request_id` of a `requires_approval` turn result).
    #[schema(min_length = 1, example = "perm-call_abc123")]
    pub request_id: String,
    /// Allow or deny.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::named_tag::optional")]
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

impl TypedCommand for ApprovalCommand {
    const TYPE: &'static str = "input";
    fn given_type(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    fn runtime(&self) -> &RuntimeScope {
        &self.runtime
    }
    fn check(&self) -> Result<(), CommandError> {
        self.payload.check()
    }
}

impl ApprovalResponse {
    /// An answer names its request and holds exactly one of `decision` or `error`.
    pub(super) fn check(&self) -> Result<(), CommandError> {
        if self.request_id.is_empty() {
            return Err(CommandError::Invalid("payload.request_id must name the approval request"));
        }
        match (&self.decision, &self.error) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(CommandError::Invalid("payload needs exactly one of `decision` or `error`")),
        }
    }
}
