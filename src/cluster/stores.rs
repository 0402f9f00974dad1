//! Idempotency answers and stream tickets in Redis, so that every instance
//! honours them: a ticket issued on one instance is accepted once on any,
//! and a request repeated on another instance gets the stored answer.
//!
//! Tickets: see [`RedisTickets`]. Idempotency: `idem:<sha-1 of the key>` holds the
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
use redis::Script;

use tokio_util::sync::CancellationToken;

use super::Node;
use crate::store::{
    Begin, Claim, Claimed, IdempotencyStore, MAX_TICKETS, RECONNECT_GRACE, StoreError, StoreFuture, Stored, TICKET_TTL,
    TicketHold, TicketStore,
};

/// How often a repeat looks whether the first request finished.
const POLL: Duration = Duration::from_millis(100);

/// Redis's clock in milliseconds (the same for every instance); scripts
/// start with it.
const NOW_MS: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

/// Makes room for one more member of the sorted set KEYS[2], bounded to
/// `max`: members scored at or below `stale` are gone already and leave
/// the set; beyond that the lowest-scored go, each with its key deleted.
const MAKE_ROOM: &str = r#"
local function make_room(max, stale)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', stale)
  local over = redis.call('ZCARD', KEYS[2]) - max + 1
  if over > 0 then
    local oldest = redis.call('ZPOPMIN', KEYS[2], over)
    for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
  end
end
"#;

/// Claims a key: `first`, `mismatch`, `wait`, or `done` with the answer.
/// KEYS: the key's hash, `idem-keys`. ARGV: fingerprint, claim id, how
/// long a running claim holds the key, the most keys, the longest a key
/// lives (window plus that hold: entries of `idem-keys` older than it are
/// stale), all times in ms.
const CLAIM: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'fp', 'state', 'status', 'ct', 'body')
if not h[1] then
  local now = now_ms()
  make_room(tonumber(ARGV[4]), now - tonumber(ARGV[5]))
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'running', 'claim', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], now, KEYS[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
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

/// Frees a key whose claim gave up without an answer. KEYS: the key's
/// hash, `idem-keys`.
const RELEASE: &str = r#"
if redis.call('HGET', KEYS[1], 'claim') == ARGV[1] and redis.call('HGET', KEYS[1], 'state') == 'running' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
end
return 1
"#;

/// Issues a ticket, unused for ARGV[1] ms, within ARGV[2] unheld tickets
/// (the soonest to expire go first, as in memory); ARGV[3] is the longest
/// an unheld ticket lives. KEYS: the ticket, `tickets`.
const ISSUE: &str = r#"
local now = now_ms()
make_room(tonumber(ARGV[2]), now)
redis.call('SET', KEYS[1], '-', 'PX', ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"#;

/// Opens a stream with a ticket: the earlier holder (`-` when unused), or
/// nil when the ticket is unknown or expired. A held ticket is not counted
/// in `tickets`. KEYS: the ticket, `tickets`.
const OPEN: &str = r#"
local earlier = redis.call('GET', KEYS[1])
if not earlier then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZREM', KEYS[2], KEYS[1])
return earlier
"#;

/// Keeps a held ticket alive; 0 once another holds it.
const KEEP_HOLD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// Starts a released ticket's grace of ARGV[2] ms (if ARGV[1] still holds
/// it): unheld again, it counts in `tickets` until it expires; ARGV[3] as
/// in [`ISSUE`]. KEYS: the ticket, `tickets`.
const END_HOLD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[2]), KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"#;

/// A script with the helpers it uses.
fn script(helpers: &[&str], body: &str) -> Script {
    Script::new(&[helpers.concat(), body.to_owned()].concat())
}

/// Tickets in Redis: `ticket:<sha-1 of the ticket>` holds `-` while unused
/// (for the ticket's TTL) and then the holding stream's id, `<node>:<n>`,
/// with a TTL of the reconnect grace that the holder renews every third of
/// it. Opening a held ticket tells the holder's instance (on its channel),
/// which ends that stream at once; an instance that dies stops renewing,
/// so its tickets' grace runs out by itself. `tickets` (a sorted set: each
/// unheld ticket by its expiry) bounds unheld tickets to [`MAX_TICKETS`]
/// across the cluster, the soonest to expire going first, as in memory;
/// held ones are bounded by the streams holding them.
pub(super) struct RedisTickets {
    pub(super) node: Arc<Node>,
    issue: Script,
    open: Script,
    keep: Script,
    end_hold: Script,
    next: std::sync::atomic::AtomicU64,
}

/// The longest an unheld ticket lives (unused, or in its grace).
const UNHELD_MAX_MS: u64 = max_ms(TICKET_TTL, RECONNECT_GRACE);

const fn max_ms(a: Duration, b: Duration) -> u64 {
    let (a, b) = (a.as_millis() as u64, b.as_millis() as u64);
    if a > b { a } else { b }
}

impl RedisTickets {
    pub(super) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self {
            node,
            issue: script(&[NOW_MS, MAKE_ROOM], ISSUE),
            open: Script::new(OPEN),
            keep: Script::new(KEEP_HOLD),
            end_hold: script(&[NOW_MS], END_HOLD),
            next: Default::default(),
        })
    }

    fn unheld(&self) -> String {
        self.node.engine.key("tickets")
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
        let _: Result<i64, _> = self
            .end_hold
            .key(&key)
            .key(self.unheld())
            .arg(&holder)
            .arg(grace)
            .arg(UNHELD_MAX_MS)
            .invoke_async(&mut con)
            .await;
    }
}

impl TicketStore for Arc<RedisTickets> {
    fn issue(&self) -> StoreFuture<'_, String> {
        Box::pin(async move {
            let ticket = format!("tk_{}", uuid::Uuid::new_v4().simple());
            let mut con = self.node.engine.connection();
            let _: i64 = self
                .issue
                .key(self.key(&ticket))
                .key(self.unheld())
                .arg(TICKET_TTL.as_millis() as u64)
                .arg(MAX_TICKETS)
                .arg(UNHELD_MAX_MS)
                .invoke_async(&mut con)
                .await
                .map_err(|e| {
                    self.node.engine.failed(&e);
                    unavailable(e)
                })?;
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
                self.open.key(&key).key(self.unheld()).arg(&holder).arg(grace).invoke_async(&mut con).await.map_err(
                    |e| {
                        self.node.engine.failed(&e);
                        unavailable(e)
                    },
                )?;
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
    /// LETTA_BRIDGE_IDEMPOTENCY_KEYS: most keys remembered across the cluster.
    max_keys: usize,
    claim: Script,
    keep: Script,
    release: Script,
}

impl RedisIdempotency {
    pub(super) fn new(node: Arc<Node>, window: Duration, max_wait: Duration, max_keys: usize) -> Self {
        Self {
            node,
            window,
            max_wait,
            max_keys,
            claim: script(&[NOW_MS, MAKE_ROOM], CLAIM),
            keep: Script::new(KEEP),
            release: Script::new(RELEASE),
        }
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
            let mut con = self.node.engine.connection();
            let reply: Vec<Option<Vec<u8>>> = self
                .claim
                .key(&redis_key)
                .key(self.keys())
                .arg(&fingerprint)
                .arg(&claim_id)
                .arg(hold)
                .arg(self.max_keys)
                .arg(lifetime)
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
            let released: Result<i64, _> = self
                .store
                .release
                .key(&self.key)
                .key(self.store.keys())
                .arg(&self.claim_id)
                .invoke_async(&mut con)
                .await;
            if let Err(e) = released {
                tracing::debug!(error = %e, "could not free an Idempotency-Key; it expires by itself");
            }
        });
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
