//! Answers remembered by `Idempotency-Key`: the first request with a key
//! claims it and runs; a repeat gets the stored answer, waits for the first
//! one to finish, or is told the key was used for a different request.
//! The in-memory store is bounded by key count, bytes and age.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use tokio::sync::watch;

use super::StoreFuture;

/// Bytes of remembered answers kept at most; the oldest go first.
pub const MAX_STORED_BYTES: usize = 64 * 1024 * 1024;

/// Stale entries (of keys already freed) the order list may hold beyond
/// twice the live keys before it is compacted, so that compacting costs
/// O(1) per claim amortised. Without compaction, a key claimed and freed
/// again and again (refused requests) grew the list by one entry each
/// time until the window passed: 200,000 refusals on one key took the
/// process from 9 to 69 MB, and that memory stayed.
const COMPACT_SLACK: usize = 64;

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its status.
    pub status: StatusCode,
    /// Its `Content-Type`.
    pub content_type: Option<HeaderValue>,
    /// Its body.
    pub body: Bytes,
}

/// What to do with a request carrying a key.
pub enum Begin {
    /// First use: run it, then finish the claim.
    First(Claim),
    /// Answered before: replay.
    Replay(Arc<Stored>),
    /// The first request with this key is still running: this resolves with
    /// its answer, or `None` when it gave up without one.
    Wait(std::pin::Pin<Box<dyn Future<Output = Option<Arc<Stored>>> + Send>>),
    /// The key was used with a different request.
    Mismatch,
}

/// Where answers are remembered.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `request` (what identifies the request: the same
    /// key with a different request is a mismatch), or says what became of it.
    fn begin<'a>(&'a self, key: &'a str, request: &'a str) -> StoreFuture<'a, Begin>;
}

/// A store's side of a claim.
pub trait Claimed: Send {
    /// Remembers the answer for repeats.
    fn keep(self: Box<Self>, stored: Stored) -> StoreFuture<'static, ()>;
    /// Frees the key at once, so a corrected retry can run.
    fn release(self: Box<Self>);
}

/// The right to run the first request with a key; dropping it unfinished
/// frees the key (waiters are told to retry).
pub struct Claim(Option<Box<dyn Claimed>>);

impl Claim {
    /// A claim held by a store.
    pub fn new(claimed: Box<dyn Claimed>) -> Self {
        Self(Some(claimed))
    }

    /// Remembers `stored` for repeats, or frees the key when `None`.
    pub async fn finish(mut self, stored: Option<Stored>) -> Result<(), super::StoreError> {
        match (self.0.take(), stored) {
            (Some(claimed), Some(stored)) => claimed.keep(stored).await,
            (Some(claimed), None) => {
                claimed.release();
                Ok(())
            }
            (None, _) => Ok(()),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(claimed) = self.0.take() {
            claimed.release();
        }
    }
}

type Slot = watch::Sender<Option<Arc<Stored>>>;

/// Answers in this process's memory.
pub struct MemoryIdempotency {
    window: Duration,
    max_keys: usize,
    hasher: RandomState,
    /// Short map operations only; never held across `.await`.
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    map: HashMap<String, Entry>,
    /// Keys in first-use order, for expiry and eviction. Entries of keys
    /// freed since are stale: at most twice the live keys plus
    /// [`COMPACT_SLACK`] are kept (see [`Store::free`]).
    order: VecDeque<(Instant, String, u64)>,
    bytes: usize,
    next_id: u64,
}

struct Entry {
    id: u64,
    fingerprint: u64,
    slot: Slot,
    size: usize,
}

/// A claim on the in-memory store.
struct MemoryClaim {
    owner: Arc<MemoryIdempotency>,
    key: String,
    id: u64,
}

impl MemoryIdempotency {
    /// Keys remembered for `window`, at most `max_keys` of them.
    pub fn new(window: Duration, max_keys: usize) -> Arc<Self> {
        Arc::new(Self { window, max_keys, hasher: RandomState::new(), store: Mutex::default() })
    }

    /// [`IdempotencyStore::begin`] at `now`.
    pub fn begin_at(self: &Arc<Self>, key: &str, request: &str, now: Instant) -> Begin {
        let fingerprint = self.hasher.hash_one(request);
        let mut store = self.lock();
        store.expire(now, self.window);
        if let Some(entry) = store.map.get(key) {
            if entry.fingerprint != fingerprint {
                return Begin::Mismatch;
            }
            return match entry.slot.borrow().clone() {
                Some(stored) => Begin::Replay(stored),
                None => {
                    let mut rx = entry.slot.subscribe();
                    Begin::Wait(Box::pin(
                        async move { rx.wait_for(Option::is_some).await.ok().and_then(|s| s.clone()) },
                    ))
                }
            };
        }
        while store.map.len() >= self.max_keys && store.evict_oldest() {}
        store.next_id += 1;
        let id = store.next_id;
        let (slot, _) = watch::channel(None);
        store.map.insert(key.to_owned(), Entry { id, fingerprint, slot, size: 0 });
        store.order.push_back((now, key.to_owned(), id));
        Begin::First(Claim::new(Box::new(MemoryClaim { owner: self.clone(), key: key.to_owned(), id })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IdempotencyStore for Arc<MemoryIdempotency> {
    fn begin<'a>(&'a self, key: &'a str, request: &'a str) -> StoreFuture<'a, Begin> {
        let begin = self.begin_at(key, request, Instant::now());
        Box::pin(async move { Ok(begin) })
    }
}

impl Store {
    fn expire(&mut self, now: Instant, window: Duration) {
        let before = self.order.len();
        while self.order.front().is_some_and(|(at, _, _)| now.duration_since(*at) > window) {
            self.evict_oldest();
        }
        if self.order.len() < before {
            self.shrink();
        }
    }

    /// Forgets the claim `id` of `key` (its request gave up): the newest
    /// claim's entry leaves the order list at once; an older one stays,
    /// stale, until the list is compacted.
    fn free(&mut self, key: &str, id: u64) {
        if self.map.get(key).is_none_or(|e| e.id != id) {
            return;
        }
        self.map.remove(key);
        if self.order.back().is_some_and(|(_, k, i)| *i == id && k == key) {
            self.order.pop_back();
        } else if self.order.len() > 2 * self.map.len() + COMPACT_SLACK {
            let map = &self.map;
            self.order.retain(|(_, k, i)| map.get(k).is_some_and(|e| e.id == *i));
            self.shrink();
        }
    }

    /// Gives memory back once the list and map are far below their capacity
    /// (after a burst of keys expired or was freed).
    fn shrink(&mut self) {
        if self.order.capacity() > 4 * self.order.len() + COMPACT_SLACK {
            self.order.shrink_to(2 * self.order.len());
        }
        if self.map.capacity() > 4 * self.map.len() + COMPACT_SLACK {
            self.map.shrink_to(2 * self.map.len());
        }
    }

    /// Drops the oldest key; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, key, id)) = self.order.pop_front() else { return false };
        if self.map.get(&key).is_some_and(|e| e.id == id) {
            let entry = self.map.remove(&key).expect("checked");
            self.bytes -= entry.size;
        }
        true
    }
}

impl Claimed for MemoryClaim {
    fn keep(self: Box<Self>, stored: Stored) -> StoreFuture<'static, ()> {
        let mut guard = self.owner.lock();
        let store = &mut *guard;
        let size = stored.body.len();
        if let Some(entry) = store.map.get_mut(&self.key).filter(|e| e.id == self.id) {
            entry.size = size;
            entry.slot.send_replace(Some(Arc::new(stored)));
            store.bytes += size;
            while store.bytes > MAX_STORED_BYTES && store.evict_oldest() {}
        }
        Box::pin(async { Ok(()) })
    }

    fn release(self: Box<Self>) {
        self.owner.lock().free(&self.key, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &'static str) -> Option<Stored> {
        Some(Stored { status: StatusCode::ACCEPTED, content_type: None, body: Bytes::from_static(body.as_bytes()) })
    }

    fn first(store: &Arc<MemoryIdempotency>, key: &str, request: &str, now: Instant) -> Claim {
        match store.begin_at(key, request, now) {
            Begin::First(claim) => claim,
            _ => panic!("expected the first use of {key:?}"),
        }
    }

    #[tokio::test]
    async fn a_finished_key_replays_and_a_different_request_is_a_mismatch() {
        let store = MemoryIdempotency::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        first(&store, "k", "a", now).finish(stored("first")).await.unwrap();
        assert!(matches!(store.begin_at("k", "a", now), Begin::Replay(s) if s.body == "first"));
        assert!(matches!(store.begin_at("k", "b", now), Begin::Mismatch));
    }

    #[tokio::test]
    async fn keys_expire_after_the_window() {
        let store = MemoryIdempotency::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        first(&store, "k", "a", now).finish(stored("x")).await.unwrap();
        assert!(matches!(store.begin_at("k", "a", now + Duration::from_secs(61)), Begin::First(_)));
    }

    #[tokio::test]
    async fn an_unfinished_or_unremembered_claim_frees_the_key() {
        let store = MemoryIdempotency::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let claim = first(&store, "k", "a", now);
        let Begin::Wait(waiting) = store.begin_at("k", "a", now) else { panic!("a repeat waits") };
        drop(claim);
        assert!(waiting.await.is_none(), "the waiter learns the first request gave up");
        first(&store, "k", "a", now).finish(None).await.unwrap();
        assert!(matches!(store.begin_at("k", "a", now), Begin::First(_)));
    }

    #[tokio::test]
    async fn refused_requests_on_one_key_leave_the_order_list_bounded_and_it_shrinks_after_the_window() {
        let store = MemoryIdempotency::new(Duration::from_secs(60), 100);
        let start = Instant::now();
        // Two keys in turn, each claimed while the other still runs, so a
        // release is never of the newest claim.
        let mut running = first(&store, "a", "r", start);
        for i in 0..200_000u64 {
            let now = start + Duration::from_micros(i);
            let next = first(&store, if i % 2 == 0 { "b" } else { "a" }, "r", now);
            std::mem::replace(&mut running, next).finish(None).await.unwrap();
            let (live, order) = {
                let guard = store.lock();
                (guard.map.len(), guard.order.len())
            };
            assert!(order <= 2 * live + COMPACT_SLACK, "after {i} refusals, {live} live keys and {order} in order");
        }
        running.finish(None).await.unwrap();
        let later = start + Duration::from_secs(120);
        first(&store, "other", "r", later).finish(stored("x")).await.unwrap();
        let guard = store.lock();
        assert_eq!((guard.map.len(), guard.order.len()), (1, 1), "only the live key is left");
        assert!(guard.order.capacity() <= 64, "the order list gave its memory back: {}", guard.order.capacity());
    }

    #[tokio::test]
    async fn the_key_count_is_bounded() {
        let store = MemoryIdempotency::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        for key in ["a", "b", "c"] {
            first(&store, key, "r", now).finish(stored("x")).await.unwrap();
        }
        assert_eq!(store.lock().map.len(), 2);
        assert!(matches!(store.begin_at("a", "r", now), Begin::First(_)), "the oldest key was evicted");
    }
}
