//! `Idempotency-Key` on command POSTs: a repeat within the window gets the
//! first answer (marked `Idempotent-Replayed: true`) and sends nothing; the
//! same key with a different request is `422`. A repeat that arrives while the
//! first is still running waits for its answer.
//!
//! Only answers given after the command went to the runtime are remembered
//! (2xx, 502, 504); refusals that sent nothing (4xx, 503) free the key, so a
//! corrected retry can go through. Bounded by key count, bytes and age.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Bytes, to_bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::ApiError;

/// Bytes of remembered answers kept at most; the oldest go first.
pub const MAX_STORED_BYTES: usize = 64 * 1024 * 1024;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

impl Stored {
    fn response(&self) -> Response {
        let mut res = (self.status, self.body.clone()).into_response();
        if let Some(ct) = &self.content_type {
            res.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        res
    }
}

type Slot = watch::Sender<Option<Arc<Stored>>>;

/// What to do with a request carrying a key.
pub enum Begin {
    /// First use: run it, then `finish` the claim.
    First(Claim),
    /// Answered before: replay.
    Replay(Arc<Stored>),
    /// The first request with this key is still running: wait for it.
    Wait(watch::Receiver<Option<Arc<Stored>>>),
    /// The key was used with a different request.
    Mismatch,
}

pub struct Idempotency {
    window: Duration,
    max_keys: usize,
    hasher: RandomState,
    /// Short map operations only; never held across `.await`.
    store: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    map: HashMap<String, Entry>,
    /// Keys in first-use order, for expiry and eviction.
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

/// The right to run the first request with a key; dropping it unfinished
/// frees the key (waiters are told to retry).
pub struct Claim {
    owner: Arc<Idempotency>,
    key: String,
    id: u64,
    /// Set once an answer is remembered; then dropping keeps the key.
    done: bool,
}

impl Idempotency {
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self { window, max_keys, hasher: RandomState::new(), store: Mutex::default() }
    }

    /// A keyed hash of what identifies the request.
    pub fn fingerprint(&self, request: &str) -> u64 {
        self.hasher.hash_one(request)
    }

    pub fn begin(self: &Arc<Self>, key: &str, fingerprint: u64, now: Instant) -> Begin {
        let mut store = self.lock();
        store.expire(now, self.window);
        if let Some(entry) = store.map.get(key) {
            if entry.fingerprint != fingerprint {
                return Begin::Mismatch;
            }
            return match entry.slot.borrow().clone() {
                Some(stored) => Begin::Replay(stored),
                None => Begin::Wait(entry.slot.subscribe()),
            };
        }
        while store.map.len() >= self.max_keys && store.evict_oldest() {}
        store.next_id += 1;
        let id = store.next_id;
        let (slot, _) = watch::channel(None);
        store.map.insert(key.to_owned(), Entry { id, fingerprint, slot, size: 0 });
        store.order.push_back((now, key.to_owned(), id));
        Begin::First(Claim { owner: self.clone(), key: key.to_owned(), id, done: false })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    fn expire(&mut self, now: Instant, window: Duration) {
        while self.order.front().is_some_and(|(at, _, _)| now.duration_since(*at) > window) {
            self.evict_oldest();
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

impl Claim {
    /// Remembers `stored` for repeats, or frees the key when `None`.
    pub fn finish(mut self, stored: Option<Stored>) {
        let Some(stored) = stored else { return }; // Drop frees the key.
        let mut guard = self.owner.lock();
        let store = &mut *guard;
        let size = stored.body.len();
        if let Some(entry) = store.map.get_mut(&self.key).filter(|e| e.id == self.id) {
            entry.size = size;
            entry.slot.send_replace(Some(Arc::new(stored)));
            store.bytes += size;
            while store.bytes > MAX_STORED_BYTES && store.evict_oldest() {}
        }
        self.done = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut store = self.owner.lock();
        if store.map.get(&self.key).is_some_and(|e| e.id == self.id) {
            store.map.remove(&self.key);
        }
    }
}

/// The request's `Idempotency-Key`, if any (`400` when malformed).
pub fn key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    match value.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(k)),
        _ => Err(ApiError::BadRequest(format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"))),
    }
}

/// Runs `run` at most once per key (see the module doc). `request` is what
/// identifies the request for the mismatch check.
pub async fn once<F>(
    store: &Arc<Idempotency>,
    headers: &HeaderMap,
    request: impl FnOnce() -> String,
    max_wait: Duration,
    run: impl FnOnce() -> F,
) -> Result<Response, ApiError>
where
    F: Future<Output = Result<Response, ApiError>>,
{
    let Some(key) = key(headers)? else { return run().await };
    let claim = match store.begin(key, store.fingerprint(&request()), Instant::now()) {
        Begin::First(claim) => claim,
        Begin::Replay(stored) => return Ok(stored.response()),
        Begin::Mismatch => {
            return Err(ApiError::Invalid("this Idempotency-Key was already used with a different request".into()));
        }
        Begin::Wait(mut rx) => {
            let done = tokio::time::timeout(max_wait, rx.wait_for(Option::is_some)).await;
            return match done {
                Ok(Ok(stored)) => Ok(stored.as_ref().expect("waited for Some").response()),
                _ => Err(ApiError::Conflict(
                    "an earlier request with this Idempotency-Key did not complete; retry it".into(),
                )),
            };
        }
    };
    let response = run().await.unwrap_or_else(IntoResponse::into_response);
    let status = response.status();
    let remember = status.is_success() || status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT;
    if !remember {
        return Ok(response); // `claim` drops here and frees the key
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    claim.finish(Some(Stored { status, content_type, body: body.clone() }));
    Ok(Response::from_parts(parts, body.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &'static str) -> Option<Stored> {
        Some(Stored { status: StatusCode::ACCEPTED, content_type: None, body: Bytes::from_static(body.as_bytes()) })
    }

    #[test]
    fn a_finished_key_replays_and_a_different_request_is_a_mismatch() {
        let store = Arc::new(Idempotency::new(Duration::from_secs(60), 10));
        let now = Instant::now();
        let Begin::First(claim) = store.begin("k", 1, now) else { panic!("first use") };
        claim.finish(stored("first"));
        assert!(matches!(store.begin("k", 1, now), Begin::Replay(s) if s.body == "first"));
        assert!(matches!(store.begin("k", 2, now), Begin::Mismatch));
    }

    #[test]
    fn keys_expire_after_the_window() {
        let store = Arc::new(Idempotency::new(Duration::from_secs(60), 10));
        let now = Instant::now();
        let Begin::First(claim) = store.begin("k", 1, now) else { panic!() };
        claim.finish(stored("x"));
        assert!(matches!(store.begin("k", 1, now + Duration::from_secs(61)), Begin::First(_)));
    }

    #[test]
    fn an_unfinished_or_unremembered_claim_frees_the_key() {
        let store = Arc::new(Idempotency::new(Duration::from_secs(60), 10));
        let now = Instant::now();
        let Begin::First(claim) = store.begin("k", 1, now) else { panic!() };
        assert!(matches!(store.begin("k", 1, now), Begin::Wait(_)));
        drop(claim);
        let Begin::First(claim) = store.begin("k", 1, now) else { panic!("freed") };
        claim.finish(None);
        assert!(matches!(store.begin("k", 1, now), Begin::First(_)));
    }

    #[test]
    fn the_key_count_is_bounded() {
        let store = Arc::new(Idempotency::new(Duration::from_secs(60), 2));
        let now = Instant::now();
        for key in ["a", "b", "c"] {
            let Begin::First(claim) = store.begin(key, 1, now) else { panic!() };
            claim.finish(stored("x"));
        }
        assert_eq!(store.lock().map.len(), 2);
        assert!(matches!(store.begin("a", 1, now), Begin::First(_)), "the oldest key was evicted");
    }
}
