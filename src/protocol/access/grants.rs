//! What an end user's token grants (issue 21): RFC 9396
//! `authorization_details` entries of `type: "letta-bridge"`, each a set of
//! actions over a set of scopes. The one model every door asks — a command
//! an end user may send, an event an end user may read — and the parser of
//! the claim, independent of how the token was verified (`auth`).
//!
//! A scope names an `agent_id` and a `conversation_id` (`"*"`: every
//! conversation of that agent), and optionally a `runtime` (absent: any
//! runtime). A detail of another `type` is ignored; a malformed
//! `letta-bridge` detail rejects the whole token.

use serde::Deserialize;
use serde_json::Value;

/// The `type` of the `authorization_details` entries the bridge reads.
pub const DETAIL_TYPE: &str = "letta-bridge";

/// Most `letta-bridge` details, and scopes in one, a token may carry (a
/// token is a bearer header: bounded, and checked per event).
pub const MAX_DETAILS: usize = 16;
/// Most scopes in one detail.
pub const MAX_SCOPES: usize = 64;
/// Longest id in a scope.
pub const MAX_ID_LEN: usize = 256;

/// What a grant lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read the scope's events (the stream, replays, client sockets).
    Read,
    /// Send a new message (`input` with `create_message`).
    Input,
    /// Answer a tool approval (`input` with `approval_response`).
    Approve,
    /// Abort the running turn (`abort_message`).
    Abort,
    /// Ask for a replay of the state (`sync`).
    Sync,
}

impl Action {
    /// The action's name in the token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Input => "input",
            Self::Approve => "approve",
            Self::Abort => "abort",
            Self::Sync => "sync",
        }
    }

    /// Every action, in the order of the docs.
    pub const ALL: [Self; 5] = [Self::Read, Self::Input, Self::Approve, Self::Abort, Self::Sync];

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "read" => Self::Read,
            "input" => Self::Input,
            "approve" => Self::Approve,
            "abort" => Self::Abort,
            "sync" => Self::Sync,
            _ => return None,
        })
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// One scope of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The runtime (device id); `None`: any runtime.
    pub runtime: Option<Box<str>>,
    /// The agent.
    pub agent_id: Box<str>,
    /// The conversation; `None` for `"*"`: every conversation of the agent.
    pub conversation_id: Option<Box<str>>,
}

impl Scope {
    /// True when `runtime`/`agent`/`conversation` lie inside this scope.
    pub fn contains(&self, runtime: &str, agent: &str, conversation: &str) -> bool {
        self.runtime.as_deref().is_none_or(|r| r == runtime)
            && *self.agent_id == *agent
            && self.conversation_id.as_deref().is_none_or(|c| c == conversation)
    }
}

/// One `letta-bridge` detail: these actions over these scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    actions: u8,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

impl Grant {
    /// True when this grant includes `action`.
    pub fn has(&self, action: Action) -> bool {
        self.actions & action.bit() != 0
    }
}

/// Everything one end user's token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The `letta-bridge` details of the token.
    pub grants: Vec<Grant>,
}

/// Why an `authorization_details` claim was refused (the token with it is
/// refused whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authorization_details: {0}")]
pub struct GrantsError(pub String);

impl Grants {
    /// The grants of an `authorization_details` claim (absent: no grant).
    pub fn from_claim(claim: Option<&Value>) -> Result<Self, GrantsError> {
        let Some(claim) = claim else { return Ok(Self::default()) };
        let Value::Array(details) = claim else {
            return Err(GrantsError("must be an array of objects".into()));
        };
        let mut grants = Vec::new();
        for (i, detail) in details.iter().enumerate() {
            let Value::Object(fields) = detail else { return Err(GrantsError(format!("entry {i} is not an object"))) };
            if fields.get("type").and_then(Value::as_str) != Some(DETAIL_TYPE) {
                if fields.get("type").is_some_and(Value::is_string) {
                    continue; // another service's detail
                }
                return Err(GrantsError(format!("entry {i} has no string `type`")));
            }
            grants.push(parse_detail(detail).map_err(|e| GrantsError(format!("entry {i}: {e}")))?);
            if grants.len() > MAX_DETAILS {
                return Err(GrantsError(format!("more than {MAX_DETAILS} `{DETAIL_TYPE}` entries")));
            }
        }
        Ok(Self { grants })
    }

    /// True when some grant allows `action` on `runtime`/`agent`/`conversation`.
    pub fn allows(&self, action: Action, runtime: &str, agent: &str, conversation: &str) -> bool {
        self.grants.iter().any(|g| g.has(action) && g.scopes.iter().any(|s| s.contains(runtime, agent, conversation)))
    }

    /// The `authorization_details` claim these grants were read from (what
    /// a ticket keeps of them; [`Self::from_claim`] reads it back).
    pub fn to_claim(&self) -> Value {
        let scope = |s: &Scope| {
            let mut scope = serde_json::json!({
                "agent_id": &*s.agent_id,
                "conversation_id": s.conversation_id.as_deref().unwrap_or("*"),
            });
            if let Some(runtime) = &s.runtime {
                scope["runtime"] = Value::from(&**runtime);
            }
            scope
        };
        let detail = |g: &Grant| {
            let actions: Vec<&str> = Action::ALL.iter().filter(|a| g.has(**a)).map(|a| a.as_str()).collect();
            serde_json::json!({"type": DETAIL_TYPE, "actions": actions, "scopes": g.scopes.iter().map(scope).collect::<Vec<_>>()})
        };
        Value::Array(self.grants.iter().map(detail).collect())
    }

    /// True when a grant with `read` names `runtime` in a scope (for the
    /// runtime's own `runtime_online` / `runtime_offline`).
    pub fn reads_runtime(&self, runtime: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.has(Action::Read) && g.scopes.iter().any(|s| s.runtime.as_deref() == Some(runtime)))
    }
}

/// The raw shape of one detail, for serde's field checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetail {
    #[serde(rename = "type")]
    _kind: String,
    actions: Vec<String>,
    scopes: Vec<RawScope>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    runtime: Option<String>,
    agent_id: String,
    conversation_id: String,
}

fn parse_detail(detail: &Value) -> Result<Grant, String> {
    let raw: RawDetail = serde_json::from_value(detail.clone()).map_err(|e| e.to_string())?;
    let mut actions = 0u8;
    for name in &raw.actions {
        let action = Action::parse(name).ok_or_else(|| format!("unknown action {name:?}"))?;
        actions |= action.bit();
    }
    if actions == 0 {
        return Err("`actions` is empty".into());
    }
    if raw.scopes.is_empty() || raw.scopes.len() > MAX_SCOPES {
        return Err(format!("`scopes` must hold 1 to {MAX_SCOPES} scopes"));
    }
    let id = |what: &str, v: String| -> Result<Box<str>, String> {
        if v.is_empty() || v.len() > MAX_ID_LEN || v.chars().any(char::is_control) {
            Err(format!("`{what}` must be 1-{MAX_ID_LEN} printable characters"))
        } else {
            Ok(v.into())
        }
    };
    let scopes = raw
        .scopes
        .into_iter()
        .map(|s| {
            Ok(Scope {
                runtime: s.runtime.map(|r| id("runtime", r)).transpose()?,
                agent_id: if s.agent_id == "*" {
                    return Err("`agent_id` must name an agent (`*` is for `conversation_id` only)".into());
                } else {
                    id("agent_id", s.agent_id)?
                },
                conversation_id: match s.conversation_id.as_str() {
                    "*" => None,
                    _ => Some(id("conversation_id", s.conversation_id)?),
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Grant { actions, scopes })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn grants(v: Value) -> Result<Grants, GrantsError> {
        Grants::from_claim(Some(&v))
    }

    #[test]
    fn the_issues_example_grants_exactly_its_scopes() {
        let g = grants(json!([{"type": "letta-bridge",
            "actions": ["read", "input", "approve", "abort", "sync"],
            "scopes": [{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"},
                       {"agent_id": "agent-2", "conversation_id": "*"}]}]))
        .unwrap();
        assert!(g.allows(Action::Read, "dev-1", "agent-1", "conv-a"));
        assert!(!g.allows(Action::Read, "dev-2", "agent-1", "conv-a"), "the scope names its runtime");
        assert!(!g.allows(Action::Read, "dev-1", "agent-1", "conv-b"));
        assert!(g.allows(Action::Input, "any-device", "agent-2", "any-conversation"), "no runtime, `*` conversation");
        assert!(!g.allows(Action::Input, "dev-1", "agent-3", "conv-a"));
        assert!(g.reads_runtime("dev-1") && !g.reads_runtime("dev-2"));
    }

    #[test]
    fn actions_are_granted_one_by_one() {
        let g = grants(json!([{"type": "letta-bridge", "actions": ["read"],
            "scopes": [{"agent_id": "a", "conversation_id": "c"}]}]))
        .unwrap();
        assert!(g.allows(Action::Read, "d", "a", "c"));
        for action in [Action::Input, Action::Approve, Action::Abort, Action::Sync] {
            assert!(!g.allows(action, "d", "a", "c"), "{}", action.as_str());
        }
    }

    #[test]
    fn other_services_details_are_ignored_and_a_malformed_one_of_ours_refuses_the_token() {
        let g = grants(json!([{"type": "payments", "anything": 1}])).unwrap();
        assert_eq!(g, Grants::default());
        for bad in [
            json!({"type": "letta-bridge"}),
            json!([{"type": "letta-bridge", "actions": ["read"]}]),
            json!([{"type": "letta-bridge", "actions": ["fly"], "scopes": [{"agent_id": "a", "conversation_id": "c"}]}]),
            json!([{"type": "letta-bridge", "actions": [], "scopes": [{"agent_id": "a", "conversation_id": "c"}]}]),
            json!([{"type": "letta-bridge", "actions": ["read"], "scopes": []}]),
            json!([{"type": "letta-bridge", "actions": ["read"], "scopes": [{"agent_id": "*", "conversation_id": "*"}]}]),
            json!([{"type": "letta-bridge", "actions": ["read"], "scopes": [{"agent_id": "a"}]}]),
            json!([{"type": "letta-bridge", "actions": ["read"], "scopes": [{"agent_id": "a", "conversation_id": "c", "x": 1}]}]),
            json!([{"type": "letta-bridge", "actions": ["read"], "scopes": [{"agent_id": "", "conversation_id": "c"}]}]),
            json!([{"actions": ["read"]}]),
            json!(["letta-bridge"]),
        ] {
            assert!(grants(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_read_back_from_their_claim_are_the_same_grants() {
        let g = grants(json!([{"type": "letta-bridge", "actions": ["read", "abort"],
            "scopes": [{"runtime": "dev-1", "agent_id": "agent-1", "conversation_id": "conv-a"},
                       {"agent_id": "agent-2", "conversation_id": "*"}]},
            {"type": "letta-bridge", "actions": ["input"], "scopes": [{"agent_id": "a", "conversation_id": "c"}]}]))
        .unwrap();
        assert_eq!(Grants::from_claim(Some(&g.to_claim())).unwrap(), g);
    }

    #[test]
    fn no_claim_grants_nothing() {
        let g = Grants::from_claim(None).unwrap();
        assert!(!g.allows(Action::Read, "d", "a", "c"));
    }
}
