//! What an end user's token (issue 21) may send: never more than the client
//! token, and of that only what its grants name, on the runtime the
//! command goes to.
//!
//! | Command | Needs |
//! |---|---|
//! | `input` with `create_message` | `input` on its `runtime` scope |
//! | `input` with `approval_response` | `approve` on its `runtime` scope |
//! | `abort_message` | `abort` on its `runtime` scope |
//! | `sync` | `sync` on its `runtime` scope |
//! | `runtime_start` that resumes | `read` on its `agent_id` and `conversation_id` |
//! | `conversation_retrieve`, `conversation_messages_list` | `read` on a scope that names its `conversation_id` (not `*`, not `default`) |
//! | `app_server_info` | `read` on some scope of the runtime |
//!
//! Everything else is refused ([`USER_COMMANDS`]): `conversation_list`
//! (an agent-wide list is not an access policy), `list_models` and
//! `change_device_state` (the device's, not a conversation's), answers to
//! the runtime's requests (`external_tool_call_response`,
//! `runtime_external_tools_update`: they name no conversation), agent and
//! conversation creation and every privileged command.

use serde_json::{Map, Value};

use super::grants::{Action, Grants, Scope};
use super::{Refusal, Role, authorize};
use crate::protocol::wire;

/// The command types an end user's token may send (the table of the module
/// doc; docs/api.md's "What a user token may send" states the same).
pub const USER_COMMANDS: &[&str] = &[
    wire::INPUT,
    wire::SYNC,
    wire::ABORT_MESSAGE,
    wire::RUNTIME_START,
    APP_SERVER_INFO,
    CONVERSATION_RETRIEVE,
    CONVERSATION_MESSAGES_LIST,
];

const APP_SERVER_INFO: &str = "app_server_info";
const CONVERSATION_RETRIEVE: &str = "conversation_retrieve";
const CONVERSATION_MESSAGES_LIST: &str = "conversation_messages_list";

/// The conversation every agent has under this name: a frame that names no
/// agent cannot say whose it is.
const DEFAULT_CONVERSATION: &str = "default";

/// May an end user holding `grants` send a frame of type `kind` to the
/// runtime `runtime` (its device id)?
pub fn authorize_user(kind: &str, frame: &Map<String, Value>, grants: &Grants, runtime: &str) -> Result<(), Refusal> {
    if !USER_COMMANDS.contains(&kind) {
        return Err(Refusal::NotForUsers { kind: kind.to_owned() });
    }
    // Never more than the client token: the same fields, the same resume rule.
    authorize(kind, frame, &Role::Client)?;
    let missing = |action: Action, agent: Option<&str>, conversation: Option<&str>| Refusal::Scope {
        kind: kind.to_owned(),
        action: action.as_str(),
        runtime: runtime.to_owned(),
        agent_id: agent.map(str::to_owned),
        conversation_id: conversation.map(str::to_owned),
    };
    let (action, agent, conversation) = match kind {
        wire::INPUT | wire::SYNC | wire::ABORT_MESSAGE => {
            let scope = |key: &str| frame.get("runtime").and_then(|s| s.get(key)).and_then(Value::as_str);
            (action_of(kind, frame), scope("agent_id"), scope("conversation_id"))
        }
        // A resume (the client's rule above): it reads the conversation's state.
        wire::RUNTIME_START => {
            let top = |key: &str| frame.get(key).and_then(Value::as_str);
            (Action::Read, top("agent_id"), top("conversation_id"))
        }
        CONVERSATION_RETRIEVE | CONVERSATION_MESSAGES_LIST => {
            // The frame names no agent: only a scope naming the conversation
            // itself says whose it is (`default` is every agent's).
            let conversation = frame.get("conversation_id").and_then(Value::as_str);
            return match conversation {
                Some(c) if c != DEFAULT_CONVERSATION && grants.names_conversation(runtime, c) => Ok(()),
                _ => Err(missing(Action::Read, None, conversation)),
            };
        }
        // app_server_info: the runtime describes itself, nothing of a conversation.
        _ if grants.may_on_runtime(Action::Read, runtime) => return Ok(()),
        _ => return Err(missing(Action::Read, None, None)),
    };
    match (agent, conversation) {
        (Some(a), Some(c)) if grants.allows(action, runtime, a, c) => Ok(()),
        _ => Err(missing(action, agent, conversation)),
    }
}

/// The action a conversation command needs: `input`'s depends on its payload.
fn action_of(kind: &str, frame: &Map<String, Value>) -> Action {
    match kind {
        wire::SYNC => Action::Sync,
        wire::ABORT_MESSAGE => Action::Abort,
        _ => {
            let payload_kind = frame.get("payload").and_then(|p| p.get("kind")).and_then(Value::as_str);
            if payload_kind == Some(wire::APPROVAL_RESPONSE) { Action::Approve } else { Action::Input }
        }
    }
}

/// A scope as a refusal names it: what the command names of it.
pub(super) fn describe(runtime: &str, agent: Option<&str>, conversation: Option<&str>) -> String {
    let mut out = if runtime.is_empty() { "no runtime named".to_owned() } else { format!("runtime `{runtime}`") };
    if let Some(agent) = agent {
        out.push_str(&format!(", agent `{agent}`"));
    }
    if let Some(conversation) = conversation {
        out.push_str(&format!(", conversation `{conversation}`"));
    }
    out
}

impl Grants {
    /// True when a grant with `action` has a scope that may lie on `runtime`
    /// (it names it, or names no runtime).
    pub fn may_on_runtime(&self, action: Action, runtime: &str) -> bool {
        self.grants.iter().any(|g| g.has(action) && g.scopes.iter().any(|s| s.on_runtime(runtime)))
    }

    /// True when some scope of a grant may lie on `runtime` (it names it,
    /// or names no runtime): the runtimes an end user may see listed and
    /// open a socket to.
    pub fn on_runtime(&self, runtime: &str) -> bool {
        self.grants.iter().any(|g| g.scopes.iter().any(|s| s.on_runtime(runtime)))
    }

    /// True when a grant with `read` has a scope on `runtime` naming
    /// `conversation` itself (not `*`).
    pub fn names_conversation(&self, runtime: &str, conversation: &str) -> bool {
        self.grants.iter().any(|g| {
            g.has(Action::Read)
                && g.scopes.iter().any(|s| s.on_runtime(runtime) && s.conversation_id.as_deref() == Some(conversation))
        })
    }

    /// May the holder read an event of type `kind` from runtime `runtime`
    /// about `agent`/`conversation` (the event's routing fields)? Only
    /// events inside a grant with `read`; of those without a conversation,
    /// only the `runtime_online`/`runtime_offline` of a runtime a scope
    /// names. O(scopes) per event.
    pub fn reads_event(
        &self,
        kind: &str,
        runtime: Option<&str>,
        agent: Option<&str>,
        conversation: Option<&str>,
    ) -> bool {
        let Some(runtime) = runtime else { return false };
        match (agent, conversation) {
            _ if kind == wire::RUNTIME_ONLINE || kind == wire::RUNTIME_OFFLINE => self.reads_runtime(runtime),
            (Some(agent), Some(conversation)) => self.allows(Action::Read, runtime, agent, conversation),
            _ => false,
        }
    }
}

impl Scope {
    /// True when this scope may lie on `runtime` (it names it, or none).
    pub fn on_runtime(&self, runtime: &str) -> bool {
        self.runtime.as_deref().is_none_or(|r| r == runtime)
    }
}

#[cfg(test)]
mod tests;
