//! The typed bodies of the command endpoints (`POST /input`, `/approval`,
//! `/sync`, `/abort`), one file per command, and the one way they become a
//! frame ([`typed_command`]). Each typed body keeps unknown fields (`extra`)
//! and sends them on untouched: the runtime evolves faster than this bridge.
//! The rules a frame obeys once built are in [`super::commands`]; which
//! fields the client token may set, in [`super::access`] (unknown ones need
//! the admin token).

mod approval;
mod control;
mod input;
mod named_tag;

use serde::Serialize;
use serde_json::Value;

pub use approval::{ApprovalCommand, ApprovalDecision, ApprovalResponse};
pub use control::{AbortCommand, SyncCommand};
pub use input::{CreateMessage, InputCommand, InputMessage, InputPayload, MessageContent, MessageRole};

use super::commands::{Command, CommandError};
use super::scope::RuntimeScope;

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
mod tests;
