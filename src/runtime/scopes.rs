//! The scopes seen on each runtime, so that the bridge can `sync` them
//! itself when the runtime reconnects. Only scopes the runtime accepts are
//! kept ([`Scope`]): a `sync` for any other would be dropped unanswered.
//!
//! A device keeps one shared, bounded set across its connections; each socket
//! task keeps a small cache of what it already reported, so the shared set is
//! locked only when a scope is new, not on every event.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use crate::protocol::Scope;

/// Most scopes remembered per device (the most recently first-seen are kept).
pub const MAX_SCOPES: usize = 64;

/// A device's scopes, shared by its successive connections.
#[derive(Clone, Default)]
pub struct SharedScopes {
    /// Locked only when a connection meets a scope its cache has not seen.
    inner: Arc<Mutex<VecDeque<Scope>>>,
}

impl SharedScopes {
    /// Remembers `scope`, dropping the oldest beyond [`MAX_SCOPES`].
    pub(super) fn note(&self, scope: Scope) {
        let mut list = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if list.contains(&scope) {
            return;
        }
        if list.len() == MAX_SCOPES {
            list.pop_front();
        }
        list.push_back(scope);
    }

    /// The scopes, oldest first.
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
    /// A cache reporting to `shared`.
    pub fn new(shared: SharedScopes) -> Self {
        Self { shared, seen: HashSet::new(), hasher: RandomState::new() }
    }

    /// Notes the scope of an event, when the runtime would accept it back
    /// (cheap when already known).
    pub fn note_event(&mut self, agent_id: Option<&str>, conversation_id: Option<&str>) {
        if conversation_id.is_none_or(str::is_empty) || self.known(agent_id, conversation_id) {
            return;
        }
        if let Some(scope) = Scope::of_event(agent_id, conversation_id) {
            self.shared.note(scope);
        }
    }

    /// Notes the scope of a command sent to the runtime.
    pub fn note(&mut self, scope: Scope) {
        if !self.known(scope.agent_id.as_deref(), Some(&scope.conversation_id)) {
            self.shared.note(scope);
        }
    }

    /// True when this pair was seen before; remembers it otherwise.
    fn known(&mut self, agent_id: Option<&str>, conversation_id: Option<&str>) -> bool {
        let key = self.hasher.hash_one((agent_id, conversation_id));
        if self.seen.contains(&key) {
            return true;
        }
        if self.seen.len() >= MAX_SCOPES * 4 {
            self.seen.clear();
        }
        self.seen.insert(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deduplicated_and_bounded() {
        let shared = SharedScopes::default();
        let mut cache = ScopeCache::new(shared.clone());
        cache.note_event(Some("a"), Some("c"));
        cache.note_event(Some("a"), Some("c"));
        cache.note_event(None, Some("c"));
        assert_eq!(shared.list().len(), 2);
        for i in 0..MAX_SCOPES + 5 {
            cache.note_event(Some(&format!("agent-{i}")), Some("c"));
        }
        let list = shared.list();
        assert_eq!(list.len(), MAX_SCOPES);
        assert_eq!(list.last().unwrap().agent_id, Some(format!("agent-{}", MAX_SCOPES + 4)));
    }

    #[test]
    fn scopes_the_runtime_would_drop_are_not_kept() {
        let shared = SharedScopes::default();
        let mut cache = ScopeCache::new(shared.clone());
        cache.note_event(Some("agent-only"), None);
        cache.note_event(Some(""), Some("c"));
        cache.note_event(Some("a"), Some(""));
        assert!(shared.list().is_empty());
    }
}
