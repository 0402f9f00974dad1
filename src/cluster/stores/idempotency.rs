//! Idempotency answers in Redis: `idem:<sha-1 of the key>` holds the
//! request's fingerprint, its state and, once done, the answer, expiring
//! after LETTA_BRIDGE_IDEMPOTENCY_WINDOW (a claim still running expires
//! after the longest wait, so a lost instance cannot hold a key forever).
//! A repeat that finds the first request running polls every 100 ms.
//! `idem-keys` (a sorted set: each key by the time of its first use)
//! bounds them to LETTA_BRIDGE_IDEMPOTENCY_KEYS: the claim that would
//! exceed it deletes the oldest first, in the same script, as the
//! in-memory store does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};

use super::super::Node;
use super::super::engine::Lua;
use super::unavailable;
use crate::store::{Begin, Claim, Claimed, IdempotencyStore, StoreFuture, Stored};

/// How often a repeat looks whether the first request finished.
const POLL: Duration = Duration::from_millis(100);

/// Idempotency answers in Redis.
pub(in crate::backend::cluster) struct RedisIdempotency {
    node: Arc<Node>,
    window: Duration,
    /// How long a running claim holds its key at most.
    max_wait: Duration,
    /// LETTA_BRIDGE_IDEMPOTENCY_KEYS: most keys remembered across the cluster.
    max_keys: usize,
}

impl RedisIdempotency {
    pub(in crate::backend::cluster) fn new(
        node: Arc<Node>,
        window: Duration,
        max_wait: Duration,
        max_keys: usize,
    ) -> Self {
        Self { node, window, max_wait, max_keys }
    }

    fn key(&self, key: &str) -> String {
        self.node.engine.key(&format!("idem:{}", sha1_smol::Sha1::from(key).digest()))
    }

    fn keys(&self) -> String {
        self.node.engine.key("idem-keys")
    }

    /// How long a running claim holds its key.
    fn hold(&self) -> Duration {
        self.max_wait + Duration::from_secs(15)
    }
}

impl IdempotencyStore for Arc<RedisIdempotency> {
    fn begin<'a>(&'a self, key: &'a str, request: &'a str) -> StoreFuture<'a, Begin> {
        Box::pin(async move {
            let redis_key = self.key(key);
            let fingerprint = sha1_smol::Sha1::from(request).digest().to_string();
            let claim_id = uuid::Uuid::new_v4().simple().to_string();
            let hold = self.hold().as_millis() as u64;
            let lifetime = (self.hold() + self.window).as_millis() as u64;
            let reply: Vec<Option<Vec<u8>>> = self
                .node
                .engine
                .script(Lua::Idempotency, "claim")
                .key(&redis_key)
                .key(self.keys())
                .arg(&fingerprint)
                .arg(&claim_id)
                .arg(hold)
                .arg(self.max_keys)
                .arg(lifetime)
                .run()
                .await
                .map_err(unavailable)?;
            let word = reply.first().cloned().flatten().unwrap_or_default();
            Ok(match word.as_slice() {
                b"first" => {
                    Begin::First(Claim::new(Box::new(RedisClaim { store: self.clone(), key: redis_key, claim_id })))
                }
                b"mismatch" => Begin::Mismatch,
                b"done" => Begin::Replay(Arc::new(stored(&reply[1..]))),
                _ => Begin::Wait(Box::pin(wait(self.clone(), redis_key, fingerprint))),
            })
        })
    }
}

/// Polls until the first request with the key finished (or gave up).
async fn wait(store: Arc<RedisIdempotency>, key: String, fingerprint: String) -> Option<Arc<Stored>> {
    loop {
        tokio::time::sleep(POLL).await;
        let cmd = redis::cmd("HMGET").arg(&key).arg("fp").arg("state").arg("status").arg("ct").arg("body").to_owned();
        let reply: Vec<Option<Vec<u8>>> = store.node.engine.run(&cmd).await.ok()?;
        match (reply.first().cloned().flatten(), reply.get(1).cloned().flatten()) {
            (Some(fp), Some(state)) if fp == fingerprint.as_bytes() && state == b"done" => {
                return Some(Arc::new(stored(&reply[2..])));
            }
            (Some(fp), Some(_)) if fp == fingerprint.as_bytes() => continue,
            _ => return None,
        }
    }
}

/// An answer from its stored fields: status, content type, body.
fn stored(fields: &[Option<Vec<u8>>]) -> Stored {
    let field = |i: usize| fields.get(i).cloned().flatten().unwrap_or_default();
    let status = std::str::from_utf8(&field(0)).ok().and_then(|s| s.parse().ok());
    Stored {
        status: status.and_then(|s: u16| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK),
        content_type: Some(field(1)).filter(|c| !c.is_empty()).and_then(|c| HeaderValue::from_bytes(&c).ok()),
        body: Bytes::from(field(2)),
    }
}

struct RedisClaim {
    store: Arc<RedisIdempotency>,
    key: String,
    claim_id: String,
}

impl Claimed for RedisClaim {
    fn keep(self: Box<Self>, stored: Stored) -> StoreFuture<'static, ()> {
        Box::pin(async move {
            let ct = stored.content_type.as_ref().map(|c| c.as_bytes().to_vec()).unwrap_or_default();
            let _: i64 = self
                .store
                .node
                .engine
                .script(Lua::Idempotency, "keep")
                .key(&self.key)
                .arg(&self.claim_id)
                .arg(stored.status.as_u16())
                .arg(ct)
                .arg(stored.body.as_ref())
                .arg(self.store.window.as_millis() as u64)
                .run()
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn release(self: Box<Self>) {
        let tasks = self.store.node.tasks.clone();
        tasks.spawn(async move {
            let released: Result<i64, _> = self
                .store
                .node
                .engine
                .script(Lua::Idempotency, "release")
                .key(&self.key)
                .key(self.store.keys())
                .arg(&self.claim_id)
                .run()
                .await;
            if let Err(e) = released {
                tracing::debug!(error = %e, "could not free an Idempotency-Key; it expires by itself");
            }
        });
    }
}
