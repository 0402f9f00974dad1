//! `POST /sync` and `POST /abort`: the conversation's control commands,
//! a state replay and a stop.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::TypedCommand;
use crate::protocol::scope::RuntimeScope;

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
