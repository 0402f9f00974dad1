//! Idempotency answers and stream tickets in Redis, so that every instance
//! honours them: a ticket issued on one instance is accepted once on any,
//! and a request repeated on another instance gets the stored answer.
//!
//! Tickets: see [`RedisTickets`]. Idempotency: `idem:<sha-1 of the key>` holds the
//! request's fingerprint, its state and, once done, the answer, expiring
//! after LETTA_BRIDGE_IDEMPOTENCY_WINDOW (a claim still running expires
//! after the longest wait, so a lost instance cannot hold a key forever).
//! A repeat that finds the first request running polls every 100 ms.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use redis::Script;

use tokio_util::sync::CancellationToken;

use super::Node;
use crate::store::{
    Begin, Claim, Claimed, IdempotencyStore, RECONNECT_GRACE, StoreError, StoreFuture, Stored, TICKET_TTL, TicketHold,
    TicketStore,
};

/// How often a repeat looks whether the first request finished.
const POLL: Duration = Duration::from_millis(100);

/// Claims a key: `first`, `mismatch`, `wait`, or `done` with the answer.
const CLAIM: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'fp', 'state', 'status', 'ct', 'body')
if not h[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'running', 'claim', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'first'}
end
if h[1] ~= ARGV[1] then return {'mismatch'} end
if h[2] == 'done' then return {'done', h[3], h[4], h[5]} end
return {'wait'}
"#;

/// Stores the answer of a claim (if it still holds the key).
const KEEP: &str = r#"
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'ct', ARGV[3], 'body', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"#;

/// Frees a key whose claim gave up without an answer.
const RELEASE: &str = r#"
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] and redis.call('HGET', KEYS[1], 'state') == 'running' then
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Opens a stream with a ticket: the earlier holder (`-` when unused), or
/// nil when the ticket is unknown or expired.
const OPEN: &str = r#"
local earlier = redis.call('GET', KEYS[1])
if not earlier then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return earlier
"#;

/// Keeps a held ticket alive (or starts its grace); 0 once another holds it.
const KEEP_HOLD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// Tickets in Redis: `ticket:<sha-1 of the ticket>` holds `-` while unused
/// (for the ticket's TTL) and then the holding stream's id, `<node>:<n>`,
/// with a TTL of the reconnect grace that the holder renews every third of
/// it. Opening a held ticket tells the holder's instance (on its channel),
/// which ends that stream at once; an instance that dies stops renewing,
/// so its tickets' grace runs out by itself.
pub(super) struct RedisTickets {
    pub(super) node: Arc<Node>,
    open: Script,
    keep: Script,
    next: std::sync::atomic::AtomicU64,
}

impl RedisTickets {
    pub(super) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self { node, open: Script::new(OPEN), keep: Script::new(KEEP_HOLD), next: Default::default() })
    }

    fn key(&self, ticket: &str) -> String {
        self.node.engine.key(&format!("ticket:{}", sha1_smol::Sha1::from(ticket).digest()))
    }

    /// Renews `holder`'s hold until it is released or taken over.
    async fn renew(
        self: Arc<Self>,
        key: String,
        holder: String,
        taken: CancellationToken,
        released: CancellationToken,
    ) {
        let grace = RECONNECT_GRACE.as_millis() as u64;
        loop {
            tokio::select! {
                () = released.cancelled() => break,
                () = taken.cancelled() => return,
                () = tokio::time::sleep(RECONNECT_GRACE / 3) => {}
            }
            let mut con = self.node.engine.connection();
            let kept: Result<i64, _> = self.keep.key(&key).arg(&holder).arg(grace).invoke_async(&mut con).await;
            if kept == Ok(0) {
                taken.cancel();
                return;
            }
        }
        // Released: the grace starts now.
        let mut con = self.node.engine.connection();
        let _: Result<i64, _> = self.keep.key(&key).arg(&holder).arg(grace).invoke_async(&mut con).await;
    }
}

impl TicketStore for Arc<RedisTickets> {
    fn issue(&self) -> StoreFuture<'_, String> {
        Box::pin(async move {
            let ticket = format!("tk_{}", uuid::Uuid::new_v4().simple());
            let cmd = redis::cmd("SET")
                .arg(self.key(&ticket))
                .arg("-")
                .arg("PX")
                .arg(TICKET_TTL.as_millis() as u64)
                .to_owned();
            self.node.engine.run::<()>(&cmd).await.map_err(unavailable)?;
            Ok(ticket)
        })
    }

    fn open<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, Option<TicketHold>> {
        Box::pin(async move {
            let key = self.key(ticket);
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let holder = format!("{}:{n}", self.node.id);
            let mut con = self.node.engine.connection();
            let grace = RECONNECT_GRACE.as_millis() as u64;
            let earlier: Option<String> =
                self.open.key(&key).arg(&holder).arg(grace).invoke_async(&mut con).await.map_err(|e| {
                    self.node.engine.failed(&e);
                    unavailable(e)
                })?;
            let Some(earlier) = earlier else { return Ok(None) };
            if earlier != "-" {
                self.node.ticket_taken(&earlier);
            }
            let taken = CancellationToken::new();
            let released = CancellationToken::new();
            self.node.hold_ticket(&holder, taken.clone());
            tokio::spawn(self.clone().renew(key, holder.clone(), taken.clone(), released.clone()));
            let node = self.node.clone();
            Ok(Some(TicketHold::new(taken, move || {
                node.release_ticket(&holder);
                released.cancel();
            })))
        })
    }
}

/// Idempotency answers in Redis.
pub(super) struct RedisIdempotency {
    node: Arc<Node>,
    window: Duration,
    /// How long a running claim holds its key at most.
    max_wait: Duration,
    claim: Script,
    keep: Script,
    release: Script,
}

impl RedisIdempotency {
    pub(super) fn new(node: Arc<Node>, window: Duration, max_wait: Duration) -> Self {
        Self {
            node,
            window,
            max_wait,
            claim: Script::new(CLAIM),
            keep: Script::new(KEEP),
            release: Script::new(RELEASE),
        }
    }

    fn key(&self, key: &str) -> String {
        self.node.engine.key(&format!("idem:{}", sha1_smol::Sha1::from(key).digest()))
    }
}

impl IdempotencyStore for Arc<RedisIdempotency> {
    fn begin<'a>(&'a self, key: &'a str, request: &'a str) -> StoreFuture<'a, Begin> {
        Box::pin(async move {
            let redis_key = self.key(key);
            let fingerprint = sha1_smol::Sha1::from(request).digest().to_string();
            let claim_id = uuid::Uuid::new_v4().simple().to_string();
            let hold = (self.max_wait + Duration::from_secs(15)).as_millis() as u64;
            let mut con = self.node.engine.connection();
            let reply: Vec<Option<Vec<u8>>> = self
                .claim
                .key(&redis_key)
                .arg(&fingerprint)
                .arg(&claim_id)
                .arg(hold)
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.failed(e))?;
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

impl RedisIdempotency {
    fn failed(&self, e: redis::RedisError) -> StoreError {
        self.node.engine.failed(&e);
        unavailable(e)
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
            let mut con = self.store.node.engine.connection();
            let _: i64 = self
                .store
                .keep
                .key(&self.key)
                .arg(&self.claim_id)
                .arg(stored.status.as_u16())
                .arg(ct)
                .arg(stored.body.as_ref())
                .arg(self.store.window.as_millis() as u64)
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.store.failed(e))?;
            Ok(())
        })
    }

    fn release(self: Box<Self>) {
        tokio::spawn(async move {
            let mut con = self.store.node.engine.connection();
            let released: Result<i64, _> =
                self.store.release.key(&self.key).arg(&self.claim_id).invoke_async(&mut con).await;
            if let Err(e) = released {
                tracing::debug!(error = %e, "could not free an Idempotency-Key; it expires by itself");
            }
        });
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
