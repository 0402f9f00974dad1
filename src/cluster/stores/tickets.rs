//! Stream tickets in Redis (see [`RedisTickets`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::Node;
use super::super::engine::Lua;
use super::super::holds::{HoldEnd, keep_holding};
use super::unavailable;
use crate::protocol::access::{Role, UserPrincipal};
use crate::store::{
    MAX_TICKETS, RECONNECT_GRACE, StoreError, StoreFuture, TICKET_TTL, TicketHold, TicketStore, TicketUser, unix_now,
};

/// How an end user's ticket starts (the client's: `tk_`), so that one
/// whose user record is missing is refused rather than opened as the client's.
const USER_TICKET: &str = "tu_";

/// Tickets in Redis: `ticket:<sha-1 of the ticket>` holds `-` while unused
/// (for the ticket's TTL) and then the holding stream's id, `<node>:<n>`,
/// with a TTL of the reconnect grace that the holder renews every third of
/// it ([`keep_holding`]). Opening a held ticket tells the holder's instance
/// (on its channel), which ends that stream at once; an instance that dies
/// stops renewing, so its tickets' grace runs out by itself. `tickets` (a
/// sorted set: each unheld ticket by its expiry) bounds unheld tickets to
/// [`MAX_TICKETS`] across the cluster, the soonest to expire going first,
/// as in memory; held ones are bounded by the streams holding them.
///
/// An end user's ticket (`tu_…`) also has `ticket:<sha-1>:user`, the user
/// ([`TicketUser`]), written first and kept until the token's `exp`, after
/// which the ticket opens nothing; without it the ticket opens nothing.
pub(in crate::backend::cluster) struct RedisTickets {
    node: Arc<Node>,
    next: AtomicU64,
}

/// The longest an unheld ticket lives (unused, or in its grace).
const UNHELD_MAX_MS: u64 = max_ms(TICKET_TTL, RECONNECT_GRACE);

const fn max_ms(a: Duration, b: Duration) -> u64 {
    let (a, b) = (a.as_millis() as u64, b.as_millis() as u64);
    if a > b { a } else { b }
}

impl RedisTickets {
    pub(in crate::backend::cluster) fn new(node: Arc<Node>) -> Arc<Self> {
        Arc::new(Self { node, next: AtomicU64::new(0) })
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

    /// Renews `holder`'s hold until it is released or taken over (or the
    /// instance leaves); a released hold's grace starts then.
    async fn renew(
        self: Arc<Self>,
        key: String,
        holder: String,
        taken: CancellationToken,
        released: CancellationToken,
    ) {
        let grace = RECONNECT_GRACE.as_millis() as u64;
        let (engine, key, holder) = (&self.node.engine, key.as_str(), holder.as_str());
        let keep = move || async move {
            let kept: i64 = engine.script(Lua::Tickets, "keep").key(key).arg(holder).arg(grace).run().await?;
            Ok::<_, redis::RedisError>(kept != 0)
        };
        if keep_holding(keep, &taken, &released, &self.node.stop).await == HoldEnd::Taken {
            return;
        }
        let end = engine.script(Lua::Tickets, "end_hold").key(key).key(self.unheld());
        let _: Result<i64, _> = end.arg(holder).arg(grace).arg(UNHELD_MAX_MS).run().await;
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
            let _: i64 = self
                .node
                .engine
                .script(Lua::Tickets, "issue")
                .key(self.key(&ticket))
                .key(self.unheld())
                .arg(TICKET_TTL.as_millis() as u64)
                .arg(MAX_TICKETS)
                .arg(UNHELD_MAX_MS)
                .run()
                .await
                .map_err(unavailable)?;
            Ok(ticket)
        })
    }

    fn open<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, Option<TicketHold>> {
        Box::pin(async move {
            let Some(user) = self.opener(ticket).await? else { return Ok(None) };
            let key = self.key(ticket);
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let holder = format!("{}:{n}", self.node.id);
            let grace = RECONNECT_GRACE.as_millis() as u64;
            let earlier: Option<String> = self
                .node
                .engine
                .script(Lua::Tickets, "open")
                .key(&key)
                .key(self.unheld())
                .arg(&holder)
                .arg(grace)
                .run()
                .await
                .map_err(unavailable)?;
            let Some(earlier) = earlier else { return Ok(None) };
            self.node.ticket_taken(&earlier);
            let taken = CancellationToken::new();
            let released = CancellationToken::new();
            self.node.holds.hold(&holder, taken.clone());
            self.node.tasks.spawn(self.clone().renew(key, holder.clone(), taken.clone(), released.clone()));
            let node = self.node.clone();
            let hold = TicketHold::new(taken, move || {
                node.holds.release(&holder);
                released.cancel();
            });
            Ok(Some(hold.of_user(user)))
        })
    }
}
