//! Where a frame applies on the runtime: its `runtime` object of
//! `agent_id` and `conversation_id`. One rule decides which scopes the
//! runtime takes (letta-code's `isRuntimeScope`), and one builder makes the
//! `sync` frame for a scope.
//!
//! Three shapes, one file: [`Scope`] is a scope the runtime accepts (what
//! the bridge remembers and re-syncs), [`EventScope`] is whatever an event
//! carries (read leniently, for routing and filters), and [`RuntimeScope`]
//! is the stricter body field of the typed command endpoints.
//!
//! [`filter_admits`] is the one rule of every event filter (`GET /events`'
//! query, feeds, webhooks).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// A scope the runtime accepts: a non-empty `conversation_id`, and an
/// `agent_id` that is a non-empty string or null (the runtime's default
/// agent). Conversation commands with any other scope are dropped by the
/// runtime unanswered (letta-code 0.32.18, fixture `sync_without_runtime`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[schema(as = FrameScope)]
pub struct Scope {
    /// An agent id, or null for the runtime's default.
    #[schema(min_length = 1, required = true)]
    pub agent_id: Option<String>,
    /// A conversation id (never empty).
    #[schema(min_length = 1)]
    pub conversation_id: String,
}

impl Scope {
    /// The runtime's acceptance rule applied to the two ids, where `agent`
    /// is `None` when the field is absent and `Some(None)` when it is null.
    pub fn accepted(agent: Option<Option<&str>>, conversation: Option<&str>) -> Option<Self> {
        let conversation_id = conversation.filter(|c| !c.is_empty())?.to_owned();
        let agent_id = match agent? {
            None => None,
            Some(a) if !a.is_empty() => Some(a.to_owned()),
            Some(_) => return None,
        };
        Some(Self { agent_id, conversation_id })
    }

    /// The scope of a `runtime` value, when the runtime accepts it.
    pub fn of_value(runtime: &Value) -> Option<Self> {
        let agent = match runtime.get("agent_id")? {
            Value::Null => None,
            Value::String(a) => Some(a.as_str()),
            _ => return None,
        };
        Self::accepted(Some(agent), runtime.get("conversation_id")?.as_str())
    }

    /// The scope of a frame's `runtime` object, when the runtime accepts it.
    pub fn of_frame(frame: &Map<String, Value>) -> Option<Self> {
        Self::of_value(frame.get("runtime")?)
    }

    /// The scope an event names, when the runtime would accept it back (an
    /// event's absent `agent_id` reads as null, as [`EventScope`] reads it).
    pub fn of_event(agent_id: Option<&str>, conversation_id: Option<&str>) -> Option<Self> {
        Self::accepted(Some(agent_id), conversation_id)
    }

    /// The `runtime` object of a frame for this scope.
    pub fn to_value(&self) -> Value {
        json!({"agent_id": self.agent_id, "conversation_id": self.conversation_id})
    }

    /// The `sync` frame that asks the runtime to replay this scope's state.
    pub fn sync_frame(&self, request_id: &str) -> String {
        json!({"type": "sync", "request_id": request_id, "runtime": self.to_value()}).to_string()
    }
}

/// Does an event of `runtime` about `agent`/`conversation` pass a filter
/// wanting `want_runtime`, `want_agent`, `want_conversation` (each `None`:
/// anything)? A wanted runtime must be the event's; a wanted agent or
/// conversation must be the event's when it names one: an event without one
/// (`runtime_online`, device-level updates) passes. On the per-event path of
/// every subscriber: comparisons only.
#[inline]
pub fn filter_admits(
    want: [Option<&str>; 3],
    runtime: Option<&str>,
    agent: Option<&str>,
    conversation: Option<&str>,
) -> bool {
    let [want_runtime, want_agent, want_conversation] = want;
    let named = |want: Option<&str>, have: Option<&str>| want.is_none_or(|w| have.is_none_or(|h| h == w));
    want_runtime.is_none_or(|w| runtime == Some(w))
        && named(want_agent, agent)
        && named(want_conversation, conversation)
}

/// Where an event applies on the runtime, as the event says it: either id
/// may be missing. Read from every runtime frame for routing and filters.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EventScope {
    /// The agent, if the event names one.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The conversation, if the event names one.
    #[serde(default)]
    pub conversation_id: Option<String>,
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
    /// Fields not listed here go to the runtime untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RuntimeScope {
    /// The accepted scope this body names; `None` when an id is empty.
    pub fn scope(&self) -> Option<Scope> {
        Scope::accepted(Some(Some(&self.agent_id)), Some(&self.conversation_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_wants_its_runtime_and_the_agent_or_conversation_an_event_names() {
        let want = [Some("dev-1"), Some("agent-1"), Some("conv-a")];
        assert!(filter_admits(want, Some("dev-1"), Some("agent-1"), Some("conv-a")));
        assert!(filter_admits(want, Some("dev-1"), None, None), "an event naming neither passes");
        assert!(!filter_admits(want, Some("dev-1"), Some("agent-1"), Some("conv-b")));
        assert!(!filter_admits(want, Some("dev-2"), None, None), "the runtime must be the event's");
        assert!(!filter_admits(want, None, None, None), "an event of no runtime is not the wanted one's");
        assert!(filter_admits([None; 3], None, Some("any"), Some("any")));
    }

    #[test]
    fn the_runtime_takes_a_conversation_with_an_agent_or_null() {
        let ok = [
            json!({"agent_id": "a", "conversation_id": "c"}),
            json!({"agent_id": null, "conversation_id": "c", "extra": 1}),
        ];
        for v in ok {
            assert!(Scope::of_value(&v).is_some(), "{v}");
        }
        let refused = [
            json!({"agent_id": "a"}),
            json!({"conversation_id": "c"}),
            json!({"agent_id": "", "conversation_id": "c"}),
            json!({"agent_id": "a", "conversation_id": ""}),
            json!({"agent_id": 3, "conversation_id": "c"}),
            json!({"agent_id": "a", "conversation_id": null}),
            json!("a"),
            Value::Null,
        ];
        for v in refused {
            assert!(Scope::of_value(&v).is_none(), "{v}");
        }
    }

    #[test]
    fn an_event_without_a_conversation_has_no_scope_to_sync() {
        assert_eq!(Scope::of_event(Some("a"), None), None);
        assert_eq!(Scope::of_event(None, Some("c")), Some(Scope { agent_id: None, conversation_id: "c".into() }));
    }

    #[test]
    fn a_sync_frame_names_the_scope_as_the_runtime_takes_it() {
        let scope = Scope { agent_id: None, conversation_id: "c".into() };
        let frame: Value = serde_json::from_str(&scope.sync_frame("r1")).unwrap();
        assert_eq!(
            frame,
            json!({"type": "sync", "request_id": "r1", "runtime": {"agent_id": null, "conversation_id": "c"}})
        );
        assert_eq!(Scope::of_value(&frame["runtime"]), Some(scope));
    }
}
