//! The agent/conversation scopes seen on each runtime, so that the bridge can
//! `sync` them itself when the runtime reconnects.
//!
//! A device keeps one shared, bounded set across its connections; each socket
//! task keeps a small cache of what it already reported, so the shared set is
//! locked only when a scope is new, not on every event.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// Most scopes remembered per device (the most recently first-seen are kept).
pub const MAX_SCOPES: usize = 64;

/// Where a `sync` applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub agent_id: String,
    pub conversation_id: Option<String>,
}

impl Scope {
    /// The `sync` frame the bridge sends for this scope.
    pub fn sync_frame(&self) -> String {
        let mut runtime = serde_json::Map::new();
        runtime.insert("agent_id".into(), self.agent_id.clone().into());
        if let Some(c) = &self.conversation_id {
            runtime.insert("conversation_id".into(), c.clone().into());
        }
        serde_json::json!({
            "type": "sync",
            "request_id": format!("bridge-resync-{}", uuid::Uuid::new_v4()),
            "runtime": runtime,
        })
        .to_string()
    }
}

/// A device's scopes, shared by its successive connections.
#[derive(Clone, Default)]
pub struct SharedScopes {
    /// Locked only when a connection meets a scope its cache has not seen.
    inner: Arc<Mutex<VecDeque<Scope>>>,
}

impl SharedScopes {
    /// Remembers `scope`, dropping the oldest beyond [`MAX_SCOPES`].
    pub fn note(&self, scope: Scope) {
        let mut list = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if list.contains(&scope) {
            return;
        }
        if list.len() == MAX_SCOPES {
            list.pop_front();
        }
        list.push_back(scope);
    }

    pub fn list(&self) -> Vec<Scope> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

/// One connection's memory of the scopes it already reported.
pub struct ScopeCache {
    shared: SharedScopes,
    seen: HashSet<u64>,
    hasher: RandomState,
}

impl ScopeCache {
    pub fn new(shared: SharedScopes) -> Self {
        Self { shared, seen: HashSet::new(), hasher: RandomState::new() }
    }

    /// Notes a scope seen on this connection (cheap when already known).
    pub fn note(&mut self, agent_id: &str, conversation_id: Option<&str>) {
        let key = self.hasher.hash_one((agent_id, conversation_id));
        if self.seen.contains(&key) {
            return;
        }
        if self.seen.len() >= MAX_SCOPES * 4 {
            self.seen.clear();
        }
        self.seen.insert(key);
        self.shared.note(Scope { agent_id: agent_id.to_owned(), conversation_id: conversation_id.map(str::to_owned) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deduplicated_and_bounded() {
        let shared = SharedScopes::default();
        let mut cache = ScopeCache::new(shared.clone());
        cache.note("a", Some("c"));
        cache.note("a", Some("c"));
        cache.note("a", None);
        assert_eq!(shared.list().len(), 2);
        for i in 0..MAX_SCOPES + 5 {
            cache.note(&format!("agent-{i}"), None);
        }
        let list = shared.list();
        assert_eq!(list.len(), MAX_SCOPES);
        assert_eq!(list.last().unwrap().agent_id, format!("agent-{}", MAX_SCOPES + 4));
    }

    #[test]
    fn a_sync_frame_names_the_scope() {
        let frame: serde_json::Value =
            serde_json::from_str(&Scope { agent_id: "a".into(), conversation_id: Some("c".into()) }.sync_frame())
                .unwrap();
        assert_eq!(frame["type"], "sync");
        assert_eq!(frame["runtime"], serde_json::json!({"agent_id": "a", "conversation_id": "c"}));
        assert!(frame["request_id"].as_str().unwrap().starts_with("bridge-resync-"));
    }
}
