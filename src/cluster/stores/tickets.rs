//! Stream tickets in Redis (see [`RedisTickets`]).

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use tokio_util::sync::CancellationToken;

use super::{MAKE_ROOM, NOW_MS, script, unavailable};
use crate::cluster::Node;
use crate::protocol::access::{Role, UserPrincipal};
use crate::store::{
    MAX_TICKETS, RECONNECT_GRACE, StoreError, StoreFuture, TICKET_TTL, TicketHold, TicketStore, TicketUser, unix_now,
};

/// How an end user's ticket starts (the client's: `tk_`), so that one
/// whose user record is missing is refused rather than opened as the client's.
const USER_TICKET: &str = "tu_";

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

/// Tickets in Redis: `ticket:<sha-1 of the ticket>` holds `-` while unused
/// (for the ticket's TTL) and then the holding stream's id, `<node>:<n>`,
/// with a TTL of the reconnect grace that the holder renews every third of
/// it. Opening a held ticket tells the holder's instance (on its channel),
/// which ends that stream at once; an instance that dies stops renewing,
/// so its tickets' grace runs out by itself. `tickets` (a sorted set: each
/// unheld ticket by its expiry) bounds unheld tickets to [`MAX_TICKETS`]
/// across the cluster, the soonest to expire going first, as in memory;
/// held ones are bounded by the streams holding them.
///
/// An end user's ticket (`tu_…`) also has `ticket:<sha-1>:user`, the user
/// ([`TicketUser`]), written first and kept until the token's `exp`, after
/// which the ticket opens nothing; without it the ticket opens nothing.
pub(in crate::cluster) struct RedisTickets {
    node: Arc<Node>,
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
    pub(in crate::cluster) fn new(node: Arc<Node>) -> Arc<Self> {
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

    fn user_key(&self, ticket: &str) -> String {
        format!("{}:user", self.key(ticket))
    }

    /// Who opens streams with `ticket`: `Some(None)` the client's role,
    /// `Some(Some(user))` an end user before the token's `exp`, `None`
    /// nobody (a `tu_` ticket whose user is gone or past `exp`).
    async fn opener(&self, ticket: &str) -> Result<Option<Option<Arc<UserPrincipal>>>, StoreError> {
        if !ticket.starts_with(USER_TICKET) {
            return Ok(Some(None));
        }
        let record: Option<String> = self
            .node
            .engine
            .run(&redis::cmd("GET").arg(self.user_key(ticket)).to_owned())
            .await
            .map_err(unavailable)?;
        let user = record.as_deref().and_then(TicketUser::from_json).filter(|u| u.exp > unix_now());
        Ok(user.map(|u| Some(Arc::new(u))))
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
    fn issue<'a>(&'a self, role: &'a Role) -> StoreFuture<'a, String> {
        Box::pin(async move {
            let user = role.user();
            let prefix = if user.is_some() { USER_TICKET } else { "tk_" };
            let ticket = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
            if let Some(user) = user {
                let ttl_ms = user.exp.saturating_sub(unix_now()).max(1) * 1000;
                let set = redis::cmd("SET")
                    .arg(self.user_key(&ticket))
                    .arg(TicketUser::to_json(user))
                    .arg("PX")
                    .arg(ttl_ms)
                    .to_owned();
                let _: () = self.node.engine.run(&set).await.map_err(unavailable)?;
            }
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
            let Some(user) = self.opener(ticket).await? else { return Ok(None) };
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
            let hold = TicketHold::new(taken, move || {
                node.release_ticket(&holder);
                released.cancel();
            });
            Ok(Some(hold.of_user(user)))
        })
    }
}
