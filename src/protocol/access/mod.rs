//! Who may send what: the one privilege decision every door calls.
//!
//! The admin token may send any frame. The client token may send the
//! command types of [`CLIENT_COMMANDS`], and in each only the fields listed
//! there (besides `type` and `request_id`), at the top level and inside the
//! objects the list names (`runtime`, `payload`, an approval's `decision`);
//! any other field — a permission mode, a directory, a sandbox, an option
//! added by a later runtime — needs the admin token. The lists follow
//! Letta Code's own protocol types (letta-code 0.32.18:
//! `src/types/protocol_v2.ts`, `runtime-start-protocol.ts`,
//! `external-tool-protocol.ts`, `app-server-info.ts`), the conversation
//! options of newer runtimes (PROTOCOL.md §9) and what Letta's clients
//! (`AppServerClient`) send. An end user's token (issue 21) may send a
//! part of that, on the scopes its grants name ([`authorize_user`]).
//!
//! Every door — REST (`POST /input`, `/approval`, `/sync`, `/abort`,
//! `/commands`), the relay and App-Server sockets, and `POST
//! /v1/environments/{id}/messages` — calls [`Command::authorize`] and
//! translates a [`Refusal`] to its own wire (a `403`, a refusal frame).
//! Who may read a followed turn is decided here too ([`Role::reads_turn`]).

mod allow;
pub mod grants;
mod role;
mod turns;
mod user;

use serde_json::{Map, Value};

use allow::HEAD;
pub use allow::{CLIENT_COMMANDS, Fields, Shape};
pub use role::{Role, UserPrincipal};
pub use turns::TurnScope;
pub use user::{USER_COMMANDS, authorize_user};

use super::commands::Command;
use super::wire;

/// Why a command needs the admin token. The message names the command type
/// and, for a field, its path (`payload.mode`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A command type only the admin token may send.
    #[error("`{kind}` is a privileged command: it needs the admin token")]
    Command {
        /// The frame's `type`.
        kind: String,
    },
    /// A field the client token may not set.
    #[error("`{kind}` with `{field}` needs the admin token")]
    Field {
        /// The frame's `type`.
        kind: String,
        /// The field's path, e.g. `payload.mode`.
        field: String,
    },
    /// A `kind` (of `input`'s `payload`) the client token may not send.
    #[error("`{kind}` whose `{field}` is not one of {allowed} needs the admin token")]
    Variant {
        /// The frame's `type`.
        kind: String,
        /// The path of the `kind` field, e.g. `payload.kind`.
        field: String,
        /// The kinds the client token may send, listed.
        allowed: String,
    },
    /// A `runtime_start` that does not resume an existing conversation.
    #[error(
        "`runtime_start` that does not name both `agent_id` and `conversation_id` (creating an agent or a conversation) needs the admin token"
    )]
    NotResume,
    /// A command type an end user's token may never send.
    #[error(
        "`{kind}` is not open to user tokens: they may send `input`, `sync`, `abort_message`, a `runtime_start` that resumes, and the reads of their granted conversations"
    )]
    NotForUsers {
        /// The frame's `type`.
        kind: String,
    },
    /// No grant of the end user's token holds this action on this scope.
    #[error("`{kind}` needs the `{action}` action on {}; no grant of this token allows it", user::describe(.runtime, .agent_id.as_deref(), .conversation_id.as_deref()))]
    Scope {
        /// The frame's `type`.
        kind: String,
        /// The missing action (`read`, `input`, `approve`, `abort`, `sync`).
        action: &'static str,
        /// The runtime the command goes to.
        runtime: String,
        /// The agent it names (`None`: none, or null — the runtime's
        /// default agent, which no grant names).
        agent_id: Option<String>,
        /// The conversation it names, if any.
        conversation_id: Option<String>,
    },
}

impl Command {
    /// May `role` send this command to the runtime `runtime` (its device
    /// id)? The one privilege decision (see the module doc); every door
    /// calls it before anything else happens. Only an end user's grants
    /// depend on the runtime: a door resolves the command's target first,
    /// and then sends it to that runtime and no other.
    pub fn authorize(&self, role: &Role, runtime: &str) -> Result<(), Refusal> {
        match role {
            Role::Admin => Ok(()),
            Role::Client => authorize(self.kind(), self.frame(), role),
            Role::User(user) => authorize_user(self.kind(), self.frame(), &user.grants, runtime),
        }
    }
}

/// What the client or admin token may send of a frame of type `kind` (an
/// end user's token: [`authorize_user`], which narrows this).
pub fn authorize(kind: &str, frame: &Map<String, Value>, role: &Role) -> Result<(), Refusal> {
    if *role == Role::Admin {
        return Ok(());
    }
    let Some((_, fields)) = CLIENT_COMMANDS.iter().find(|(k, _)| *k == kind) else {
        return Err(Refusal::Command { kind: kind.to_owned() });
    };
    if kind == wire::RUNTIME_START && !resumes(frame) {
        return Err(Refusal::NotResume);
    }
    check(kind, "", frame, HEAD, fields)
}

/// A `runtime_start` that names an existing agent and conversation.
fn resumes(frame: &Map<String, Value>) -> bool {
    let named = |key: &str| frame.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    named("agent_id") && named("conversation_id")
}

/// Checks the members of one object (at `path`, `""` or `"payload."`)
/// against `fields`; the members named in `given` are always allowed.
fn check(kind: &str, path: &str, object: &Map<String, Value>, given: &[&str], fields: Fields) -> Result<(), Refusal> {
    for (key, value) in object.iter().filter(|(key, _)| !given.contains(&key.as_str())) {
        let Some((_, shape)) = fields.iter().find(|(name, _)| *name == key) else {
            return Err(Refusal::Field { kind: kind.to_owned(), field: format!("{path}{key}") });
        };
        let Some(members) = value.as_object() else { continue };
        let inner = format!("{path}{key}.");
        match shape {
            Shape::Any => {}
            Shape::Object(fields) => check(kind, &inner, members, &[], fields)?,
            Shape::Kinds(kinds) => {
                let named = members.get("kind").and_then(Value::as_str);
                let Some((_, fields)) = kinds.iter().find(|(k, _)| Some(*k) == named) else {
                    let allowed = kinds.iter().map(|(k, _)| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                    return Err(Refusal::Variant { kind: kind.to_owned(), field: format!("{inner}kind"), allowed });
                };
                check(kind, &inner, members, &["kind"], fields)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
