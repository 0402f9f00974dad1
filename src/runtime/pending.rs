//! Commands awaiting their reply (`?wait=true`) or the end of their turn
//! (`?wait=completion`), keyed by (runtime, `request_id`): both count
//! against one bound (LETTA_BRIDGE_MAX_PENDING), and a `request_id` is
//! awaited by one command at a time, whichever way it waits.
//!
//! A [`Waiting`] removes its own entry when dropped, so the entry goes away on
//! every path: reply, timeout, runtime gone, or the HTTP client hanging up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

/// How an awaited command ended.
#[derive(Debug)]
pub enum Outcome {
    /// The runtime's reply frame (JSON, with `runtime_id`).
    Reply(Bytes),
    /// The runtime's socket closed before the reply came.
    Disconnected,
}

/// Why a reply cannot be awaited.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PendingError {
    /// The same runtime already has a wait (for a reply or a turn) for this `request_id`.
    #[error("a command with this request_id is already awaiting its reply")]
    Duplicate,
    /// LETTA_BRIDGE_MAX_PENDING waits are registered.
    #[error("too many commands are awaiting replies")]
    Full,
}

type Key = (Arc<str>, String);

struct Waiter {
    id: u64,
    generation: u64,
    /// A turn followed to its end ([`Pending::hold`]): no reply ends it.
    turn: bool,
    tx: oneshot::Sender<Outcome>,
}

/// The commands awaiting their reply, bounded. Cheap to clone.
#[derive(Clone)]
pub struct Pending {
    inner: Arc<Inner>,
}

struct Inner {
    /// Short map operations only; never held across `.await`.
    map: Mutex<HashMap<Key, Waiter>>,
    max: usize,
    next_id: AtomicU64,
}

/// One registered wait; dropping it unregisters it.
pub struct Waiting {
    rx: oneshot::Receiver<Outcome>,
    key: Key,
    id: u64,
    pending: Pending,
}

impl Pending {
    /// At most `max` waits at once.
    pub fn new(max: usize) -> Self {
        Self { inner: Arc::new(Inner { map: Mutex::default(), max, next_id: AtomicU64::new(1) }) }
    }

    /// Registers a wait for the reply to `request_id` from this connection of
    /// `runtime`. Register before sending, so a fast reply is not missed.
    pub fn register(&self, runtime: &Arc<str>, generation: u64, request_id: &str) -> Result<Waiting, PendingError> {
        self.insert(runtime, generation, request_id, false)
    }

    /// Holds a place for a turn followed to its end (`?wait=completion`):
    /// it counts against the bound and claims `request_id` like a wait for
    /// a reply, but neither a reply nor a closed connection ends it (the
    /// turn's follower reads those from the log); dropping it does.
    pub fn hold(&self, runtime: &Arc<str>, generation: u64, request_id: &str) -> Result<Waiting, PendingError> {
        self.insert(runtime, generation, request_id, true)
    }

    fn insert(
        &self,
        runtime: &Arc<str>,
        generation: u64,
        request_id: &str,
        turn: bool,
    ) -> Result<Waiting, PendingError> {
        let key: Key = (runtime.clone(), request_id.to_owned());
        let (tx, rx) = oneshot::channel();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.lock();
        if map.contains_key(&key) {
            return Err(PendingError::Duplicate);
        }
        if map.len() >= self.inner.max {
            return Err(PendingError::Full);
        }
        map.insert(key.clone(), Waiter { id, generation, turn, tx });
        Ok(Waiting { rx, key, id, pending: self.clone() })
    }

    /// Hands a reply to its waiter; false when nobody waits for it (a
    /// turn's hold is no waiter for replies).
    pub fn complete(&self, runtime: &Arc<str>, request_id: &str, reply: Bytes) -> bool {
        let key: Key = (runtime.clone(), request_id.to_owned());
        let waiter = {
            let mut map = self.lock();
            if map.get(&key).is_some_and(|w| w.turn) { None } else { map.remove(&key) }
        };
        waiter.is_some_and(|w| w.tx.send(Outcome::Reply(reply)).is_ok())
    }

    /// Fails every wait on this connection of `runtime` (its socket closed).
    pub fn fail_connection(&self, runtime: &str, generation: u64) {
        let failed: Vec<Waiter> = {
            let mut map = self.lock();
            let keys: Vec<Key> = map
                .iter()
                .filter(|((rt, _), w)| &**rt == runtime && w.generation == generation && !w.turn)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for w in failed {
            let _ = w.tx.send(Outcome::Disconnected);
        }
    }

    /// Waits registered (for replies and for turns).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Waiter>> {
        self.inner.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Waiting {
    /// Waits for the outcome (cancel-safe).
    pub async fn outcome(&mut self) -> Outcome {
        (&mut self.rx).await.unwrap_or(Outcome::Disconnected)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut map = self.pending.lock();
        if map.get(&self.key).is_some_and(|w| w.id == self.id) {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[tokio::test]
    async fn a_reply_reaches_its_waiter_and_clears_the_entry() {
        let p = Pending::new(10);
        let mut w = p.register(&rt("a"), 1, "r1").unwrap();
        assert!(p.complete(&rt("a"), "r1", Bytes::from_static(b"{}")));
        assert!(matches!(w.outcome().await, Outcome::Reply(b) if &b[..] == b"{}"));
        assert!(p.is_empty());
    }

    #[test]
    fn duplicates_are_refused_per_runtime_and_the_bound_holds() {
        let p = Pending::new(2);
        let _a = p.register(&rt("a"), 1, "r1").unwrap();
        assert_eq!(p.register(&rt("a"), 1, "r1").err(), Some(PendingError::Duplicate));
        let _b = p.register(&rt("b"), 1, "r1").unwrap();
        assert_eq!(p.register(&rt("c"), 1, "r9").err(), Some(PendingError::Full));
    }

    #[test]
    fn dropping_a_wait_removes_only_its_own_entry() {
        let p = Pending::new(10);
        let old = p.register(&rt("a"), 1, "r1").unwrap();
        assert!(p.complete(&rt("a"), "r1", Bytes::new()));
        let _new = p.register(&rt("a"), 1, "r1").unwrap();
        drop(old);
        assert_eq!(p.len(), 1, "the newer wait with the same key survives");
    }

    #[test]
    fn a_turns_hold_counts_against_the_bound_claims_its_id_and_outlives_replies() {
        let p = Pending::new(2);
        let turn = p.hold(&rt("a"), 1, "r1").unwrap();
        assert_eq!(p.register(&rt("a"), 1, "r1").err(), Some(PendingError::Duplicate));
        assert_eq!(p.hold(&rt("a"), 1, "r1").err(), Some(PendingError::Duplicate));
        let _other = p.hold(&rt("a"), 1, "r2").unwrap();
        assert_eq!(p.register(&rt("a"), 1, "r3").err(), Some(PendingError::Full));
        assert!(!p.complete(&rt("a"), "r1", Bytes::new()), "the input_accepted of a turn ends no hold");
        p.fail_connection("a", 1);
        assert_eq!(p.len(), 2, "the turn's follower ends it, not the connection");
        drop(turn);
        assert_eq!(p.len(), 1);
    }

    #[tokio::test]
    async fn a_closed_connection_fails_only_its_own_waits() {
        let p = Pending::new(10);
        let mut gone = p.register(&rt("a"), 1, "r1").unwrap();
        let _newer = p.register(&rt("a"), 2, "r2").unwrap();
        p.fail_connection("a", 1);
        assert!(matches!(gone.outcome().await, Outcome::Disconnected));
        assert_eq!(p.len(), 1);
    }
}
