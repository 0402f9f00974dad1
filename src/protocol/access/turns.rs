//! Who may read a turn the bridge followed (`GET /turns/{id}`, `GET
//! /turns`): part of the one privilege decision, next to who may send
//! what. The admin token reads every turn; the client token the turns the
//! client role started; an end user's token the turns that user started,
//! and of those only the ones inside a grant with `read` (the grants of
//! the token presented now, as for events: a narrower token reads less).

use std::borrow::Cow;

use super::Role;
use super::grants::Action;

/// Where a turn ran and who started it, as the decision reads it.
#[derive(Debug, Clone, Copy)]
pub struct TurnScope<'a> {
    /// The principal that started it ([`Role::principal`]).
    pub started_by: &'a str,
    /// Its runtime.
    pub runtime: &'a str,
    /// Its input's agent.
    pub agent_id: &'a str,
    /// Its input's conversation.
    pub conversation_id: Option<&'a str>,
}

impl Role {
    /// May this caller read the turn `turn`?
    pub fn reads_turn(&self, turn: TurnScope<'_>) -> bool {
        match self {
            Self::Admin => true,
            Self::Client => turn.started_by == self.principal(),
            Self::User(user) => {
                turn.started_by == self.principal()
                    && turn
                        .conversation_id
                        .is_some_and(|c| user.grants.allows(Action::Read, turn.runtime, turn.agent_id, c))
            }
        }
    }

    /// Whose turns this caller may read at most: `None` for everyone's (the
    /// admin token), else its own principal's. A store lists only those;
    /// [`Role::reads_turn`] still decides each.
    pub fn turns_of(&self) -> Option<Cow<'static, str>> {
        match self {
            Self::Admin => None,
            _ => Some(self.principal()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::protocol::access::UserPrincipal;
    use crate::protocol::access::grants::Grants;

    fn user(sub: &str, actions: &[&str]) -> Role {
        let grants = Grants::from_claim(Some(&json!([{"type": "letta-bridge", "actions": actions,
            "scopes": [{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"}]}])))
        .unwrap();
        Role::User(Arc::new(UserPrincipal { sub: sub.into(), exp: 0, jti: None, grants }))
    }

    fn turn<'a>(started_by: &'a str, conversation: &'a str) -> TurnScope<'a> {
        TurnScope { started_by, runtime: "dev-1", agent_id: "agent-1", conversation_id: Some(conversation) }
    }

    #[test]
    fn the_admin_reads_every_turn_and_the_client_token_its_roles() {
        assert!(Role::Admin.reads_turn(turn("user:alice", "conv-a")));
        assert!(Role::Admin.reads_turn(turn("client", "conv-a")));
        assert!(Role::Client.reads_turn(turn("client", "conv-a")));
        assert!(!Role::Client.reads_turn(turn("admin", "conv-a")));
        assert!(!Role::Client.reads_turn(turn("user:alice", "conv-a")));
        assert_eq!(Role::Admin.turns_of(), None);
        assert_eq!(Role::Client.turns_of().as_deref(), Some("client"));
    }

    #[test]
    fn an_end_user_reads_only_their_own_turns_inside_their_read_grants() {
        let alice = user("alice", &["read", "input"]);
        assert!(alice.reads_turn(turn("user:alice", "conv-a")));
        assert!(!alice.reads_turn(turn("user:bob", "conv-a")), "another user's turn, in alice's grants");
        assert!(!alice.reads_turn(turn("user:alice", "conv-b")), "outside alice's grants now");
        assert!(!alice.reads_turn(TurnScope { conversation_id: None, ..turn("user:alice", "conv-a") }));
        let input_only = user("alice", &["input"]);
        assert!(!input_only.reads_turn(turn("user:alice", "conv-a")), "no read grant");
        assert_eq!(alice.turns_of().as_deref(), Some("user:alice"));
    }
}
