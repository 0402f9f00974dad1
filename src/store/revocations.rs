//! Revoked end-user tokens (`POST /revocations`): each named by its `jti`
//! and refused until its `exp`, after which the token is refused anyway.
//! A store also tells the streams opened with a token when it is revoked
//! ([`RevocationStore::revoked`]), so that they end at once.
//!
//! Bounded: at most [`MAX_REVOCATIONS`] revocations still in force. Those
//! past their `exp` leave first; a store full of revocations in force
//! refuses the next one (`503`) rather than forget one — forgetting would
//! accept a revoked token again. User tokens are meant to live minutes, so
//! the bound is reached only by revoking tokens that live for years.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::{StoreError, StoreFuture};

/// Most revocations in force at once.
pub const MAX_REVOCATIONS: usize = 100_000;

/// Resolves once a token is revoked.
pub type RevokedFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where revocations are kept and asked.
pub trait RevocationStore: Send + Sync + 'static {
    /// Refuses the token `jti` until `exp` (seconds since the Unix epoch),
    /// on every instance.
    fn revoke<'a>(&'a self, jti: &'a str, exp: u64) -> StoreFuture<'a, ()>;
    /// True when the token `jti` is revoked.
    fn is_revoked<'a>(&'a self, jti: &'a str) -> StoreFuture<'a, bool>;
    /// Resolves once this instance learns that `jti` is revoked (at once if
    /// it knows already): the end of the streams opened with it.
    fn revoked(&self, jti: &str) -> RevokedFuture;
}

/// Revocations in this process's memory; also each cluster instance's
/// copy of the shared ones.
pub struct MemoryRevocations {
    /// `jti` → `exp`. Short map operations only; never held across `.await`.
    revoked: Mutex<HashMap<Box<str>, u64>>,
    /// Bumped after each revocation: the streams waiting on one look again.
    changed: watch::Sender<u64>,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl MemoryRevocations {
    /// None yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { revoked: Mutex::default(), changed: watch::channel(0).0 })
    }

    /// Revokes `jti` until `exp`, at `now` (both in Unix seconds). A token
    /// past its `exp` needs no revocation. Refused when
    /// [`MAX_REVOCATIONS`] are in force.
    pub fn insert_at(&self, jti: &str, exp: u64, now: u64) -> Result<(), StoreError> {
        if exp <= now {
            return Ok(());
        }
        {
            let mut revoked = self.lock();
            if revoked.len() >= MAX_REVOCATIONS && !revoked.contains_key(jti) {
                revoked.retain(|_, e| *e > now);
                if revoked.len() >= MAX_REVOCATIONS {
                    return Err(StoreError::Unavailable(format!(
                        "{MAX_REVOCATIONS} revocations are in force; a token is refused anyway after its exp"
                    )));
                }
            }
            let until = revoked.entry(jti.into()).or_insert(exp);
            *until = (*until).max(exp);
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// True when `jti` is revoked at `now` (Unix seconds).
    pub fn contains_at(&self, jti: &str, now: u64) -> bool {
        self.lock().get(jti).is_some_and(|exp| *exp > now)
    }

    /// Revocations held (in force or not yet dropped).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once `jti` is revoked here.
    pub fn watch(self: &Arc<Self>, jti: &str) -> RevokedFuture {
        // Subscribed before looking, so that a revocation in between is seen.
        let mut changed = self.changed.subscribe();
        let (this, jti) = (self.clone(), jti.to_owned());
        Box::pin(async move {
            loop {
                if this.contains_at(&jti, unix_now()) {
                    return;
                }
                if changed.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, u64>> {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RevocationStore for Arc<MemoryRevocations> {
    fn revoke<'a>(&'a self, jti: &'a str, exp: u64) -> StoreFuture<'a, ()> {
        let done = self.insert_at(jti, exp, unix_now());
        Box::pin(async move { done })
    }

    fn is_revoked<'a>(&'a self, jti: &'a str) -> StoreFuture<'a, bool> {
        let revoked = self.contains_at(jti, unix_now());
        Box::pin(async move { Ok(revoked) })
    }

    fn revoked(&self, jti: &str) -> RevokedFuture {
        self.watch(jti)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn a_revocation_holds_until_the_tokens_exp() {
        let store = MemoryRevocations::new();
        store.insert_at("j1", 1_000, 500).unwrap();
        assert!(store.contains_at("j1", 999));
        assert!(!store.contains_at("j1", 1_000), "past its exp the token is refused anyway");
        assert!(!store.contains_at("j2", 500));
        store.insert_at("old", 400, 500).unwrap();
        assert_eq!(store.len(), 1, "a token past its exp needs no revocation");
    }

    #[test]
    fn a_full_store_drops_what_expired_and_then_refuses_rather_than_forget() {
        let store = MemoryRevocations::new();
        for i in 0..MAX_REVOCATIONS {
            store.insert_at(&format!("j{i}"), if i == 0 { 600 } else { 10_000 }, 500).unwrap();
        }
        store.insert_at("new", 10_000, 700).expect("room made by the one past its exp");
        assert!(!store.contains_at("j0", 700) && store.contains_at("new", 700));
        assert!(store.insert_at("more", 10_000, 700).is_err(), "every one is in force");
        assert!(store.contains_at("j1", 700), "none was forgotten");
    }

    #[tokio::test]
    async fn a_stream_learns_of_its_tokens_revocation_and_not_of_anothers() {
        let store = MemoryRevocations::new();
        let now = unix_now();
        let mut mine = store.watch("mine");
        assert!((&mut mine).now_or_never().is_none());
        store.insert_at("other", now + 60, now).unwrap();
        assert!((&mut mine).now_or_never().is_none(), "another token's revocation");
        store.insert_at("mine", now + 60, now).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), mine).await.expect("ended");
        assert!(store.watch("mine").now_or_never().is_some(), "already revoked: at once");
    }
}
