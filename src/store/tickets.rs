//! Stream tickets: credentials a browser's `EventSource` (which cannot send
//! an `Authorization` header) puts in the URL of `GET /events`.
//!
//! The rules, chosen so that EventSource's own reconnect (same URL, plus
//! `Last-Event-ID`) keeps working:
//! - a ticket is issued for [`TICKET_TTL`]: unused, it expires then;
//! - the first stream opened with it holds it, and a held ticket does not
//!   expire, however long ago it was issued;
//! - a later open with the same ticket (the browser reconnecting) takes it
//!   over: the earlier stream ends, so a ticket never serves two streams;
//! - when the stream holding it ends, the ticket stays good for
//!   [`RECONNECT_GRACE`], for the reconnect, and then expires.
//!
//! A ticket minted with an end user's token carries that user (`sub`,
//! `exp`, `jti`, grants: [`TicketUser`] is the record a shared store keeps)
//! and opens no stream after the token's `exp`; the stream it opens reads
//! what the user may read, and ends at that `exp`. A ticket minted with the
//! client or admin token opens streams with the client's role, as always.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::StoreFuture;
use super::revocations::unix_now;
use crate::protocol::access::grants::Grants;
use crate::protocol::access::{Role, UserPrincipal};

/// How long an unused ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// How long a ticket stays valid after the stream holding it ended.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(60);

/// Most tickets held at once (the oldest-expiring unheld ones go first).
pub const MAX_TICKETS: usize = 10_000;

/// Where tickets are issued and opened.
pub trait TicketStore: Send + Sync + 'static {
    /// A new ticket valid for [`TICKET_TTL`] until a stream holds it,
    /// minted by `role` (an end user's ticket carries the user).
    fn issue<'a>(&'a self, role: &'a Role) -> StoreFuture<'a, String>;
    /// Opens a stream with `ticket`; `None` when it is unknown or expired
    /// (an end user's also past the token's `exp`). A stream holding it
    /// already is ended (taken over).
    fn open<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, Option<TicketHold>>;
}

/// A stream's hold on its ticket. [`TicketHold::taken`] resolves when
/// another stream takes the ticket over; dropping the hold starts the
/// ticket's [`RECONNECT_GRACE`].
pub struct TicketHold {
    taken: CancellationToken,
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
    user: Option<Arc<UserPrincipal>>,
}

impl TicketHold {
    /// A hold whose `taken` token the store cancels on takeover, and which
    /// calls `release` when dropped.
    pub fn new(taken: CancellationToken, release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self { taken, release: Some(Box::new(release)), user: None }
    }

    /// The hold of a ticket minted by the end user `user`.
    pub fn of_user(mut self, user: Option<Arc<UserPrincipal>>) -> Self {
        self.user = user;
        self
    }

    /// Whose stream this is: the end user who minted the ticket, else the client role.
    pub fn role(&self) -> Role {
        self.user.clone().map_or(Role::Client, Role::User)
    }

    /// Resolves once another stream took the ticket over.
    pub fn taken(&self) -> WaitForCancellationFutureOwned {
        self.taken.clone().cancelled_owned()
    }
}

impl Drop for TicketHold {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// Tickets in this process's memory.
#[derive(Default)]
pub struct MemoryTickets {
    /// Short map operations only; never held across `.await`.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tickets: HashMap<String, Ticket>,
    next_hold: u64,
}

struct Ticket {
    /// `None` while a stream holds it.
    expires: Option<Instant>,
    /// The current hold's number and takeover token.
    hold: Option<(u64, CancellationToken)>,
    /// The end user who minted it, if one did.
    user: Option<Arc<UserPrincipal>>,
}

impl MemoryTickets {
    /// Tickets shared by the handlers.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A new ticket valid for [`TICKET_TTL`] from `now`, minted by `user`
    /// (an end user) or the client or admin token (`None`).
    pub fn issue_at(&self, now: Instant, user: Option<Arc<UserPrincipal>>) -> String {
        let ticket = format!("tk_{}", uuid::Uuid::new_v4().simple());
        let mut state = self.lock();
        state.tickets.retain(|_, t| t.expires.is_none_or(|e| e > now));
        if state.tickets.len() >= MAX_TICKETS {
            let oldest =
                state.tickets.iter().filter_map(|(k, t)| t.expires.map(|e| (e, k))).min().map(|(_, k)| k.clone());
            if let Some(oldest) = oldest {
                state.tickets.remove(&oldest);
            }
        }
        state.tickets.insert(ticket.clone(), Ticket { expires: Some(now + TICKET_TTL), hold: None, user });
        ticket
    }

    /// Opens a stream with `ticket` at `now` (`unix`: the same instant in
    /// seconds since the Unix epoch, for an end user's `exp`).
    pub fn open_at(self: &Arc<Self>, ticket: &str, now: Instant, unix: u64) -> Option<TicketHold> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let entry = state.tickets.get_mut(ticket)?;
        if entry.expires.is_some_and(|e| e <= now) || entry.user.as_ref().is_some_and(|u| u.exp <= unix) {
            state.tickets.remove(ticket);
            return None;
        }
        state.next_hold += 1;
        let id = state.next_hold;
        let taken = CancellationToken::new();
        if let Some((_, earlier)) = entry.hold.replace((id, taken.clone())) {
            earlier.cancel();
        }
        entry.expires = None;
        let user = entry.user.clone();
        drop(guard);
        let (store, ticket) = (self.clone(), ticket.to_owned());
        Some(TicketHold::new(taken, move || store.release(&ticket, id, Instant::now())).of_user(user))
    }

    /// The stream holding `ticket` with hold `id` ended at `now`.
    fn release(&self, ticket: &str, id: u64, now: Instant) {
        let mut state = self.lock();
        if let Some(entry) = state.tickets.get_mut(ticket)
            && entry.hold.as_ref().is_some_and(|(held, _)| *held == id)
        {
            entry.hold = None;
            entry.expires = Some(now + RECONNECT_GRACE);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TicketStore for Arc<MemoryTickets> {
    fn issue<'a>(&'a self, role: &'a Role) -> StoreFuture<'a, String> {
        let ticket = self.issue_at(Instant::now(), role.user().cloned());
        Box::pin(async move { Ok(ticket) })
    }

    fn open<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, Option<TicketHold>> {
        let hold = self.open_at(ticket, Instant::now(), unix_now());
        Box::pin(async move { Ok(hold) })
    }
}

/// An end user as a shared store keeps them with their ticket: what the
/// token said, its grants as their `authorization_details` claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketUser {
    sub: Box<str>,
    exp: u64,
    jti: Option<Box<str>>,
    authorization_details: Value,
}

impl TicketUser {
    /// The record of `user` (also what a feed keeps of its maker).
    pub fn of(user: &UserPrincipal) -> Self {
        Self {
            sub: user.sub.clone(),
            exp: user.exp,
            jti: user.jti.clone(),
            authorization_details: user.grants.to_claim(),
        }
    }

    /// The token's `exp`, in seconds since the Unix epoch.
    pub fn exp(&self) -> u64 {
        self.exp
    }

    /// The user this record names; `None` when its grants do not parse.
    pub fn user(&self) -> Option<UserPrincipal> {
        let grants = Grants::from_claim(Some(&self.authorization_details)).ok()?;
        Some(UserPrincipal { sub: self.sub.clone(), exp: self.exp, jti: self.jti.clone(), grants })
    }

    /// The record of `user`, as JSON.
    pub fn to_json(user: &UserPrincipal) -> String {
        serde_json::to_string(&Self::of(user)).expect("records serialise")
    }

    /// The user a record names; `None` when it is not one (the ticket is then refused).
    pub fn from_json(json: &str) -> Option<UserPrincipal> {
        serde_json::from_str::<Self>(json).ok()?.user()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unused_ticket_expires_after_its_ttl() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now, None);
        assert!(tickets.open_at("tk_other", now, 0).is_none());
        assert!(tickets.open_at(&t, now + TICKET_TTL + Duration::from_millis(1), 0).is_none());
    }

    #[test]
    fn a_held_ticket_does_not_expire_and_reopens_within_the_grace_after_its_stream_ended() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now, None);
        let hold = tickets.open_at(&t, now, 0).expect("opens");
        let hours = now + Duration::from_secs(5 * 3600);
        tickets.release(&t, 1, hours);
        drop(hold);
        let within = hours + RECONNECT_GRACE - Duration::from_secs(1);
        let again = tickets.open_at(&t, within, 0).expect("a reconnect hours after issue, within the grace");
        assert!(!again.taken.is_cancelled());
    }

    #[test]
    fn a_ticket_is_dead_once_the_grace_after_its_stream_passed() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now, None);
        let hold = tickets.open_at(&t, now, 0).unwrap();
        std::mem::forget(hold); // released by hand at a chosen time
        tickets.release(&t, 1, now);
        assert!(tickets.open_at(&t, now + RECONNECT_GRACE + Duration::from_millis(1), 0).is_none());
    }

    #[test]
    fn opening_a_held_ticket_takes_it_over_and_ends_the_earlier_stream() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now, None);
        let first = tickets.open_at(&t, now, 0).unwrap();
        let second = tickets.open_at(&t, now, 0).unwrap();
        assert!(first.taken.is_cancelled(), "the earlier stream ends");
        assert!(!second.taken.is_cancelled());
        drop(first); // the earlier stream ending does not release the ticket
        assert!(tickets.lock().tickets[&t].expires.is_none(), "still held by the second stream");
    }

    fn alice(exp: u64) -> Arc<UserPrincipal> {
        let claim = serde_json::json!([{"type": "letta-bridge", "actions": ["read"],
            "scopes": [{"runtime": "dev-1", "agent_id": "a", "conversation_id": "c"}]}]);
        let grants = Grants::from_claim(Some(&claim)).unwrap();
        Arc::new(UserPrincipal { sub: "alice".into(), exp, jti: Some("j-1".into()), grants })
    }

    #[test]
    fn a_users_ticket_opens_streams_as_that_user_until_the_tokens_exp() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now, Some(alice(1_000)));
        let hold = tickets.open_at(&t, now, 999).expect("before exp");
        assert_eq!(hold.role(), Role::User(alice(1_000)), "the stream is Alice's, grants and all");
        drop(hold);
        assert!(tickets.open_at(&t, now, 1_000).is_none(), "not at the token's exp");
        let client = tickets.issue_at(now, None);
        assert_eq!(tickets.open_at(&client, now, u64::MAX).unwrap().role(), Role::Client);
    }

    #[test]
    fn a_shared_stores_record_of_a_user_reads_back_as_that_user() {
        let json = TicketUser::to_json(&alice(1_000));
        assert_eq!(TicketUser::from_json(&json).map(Arc::new), Some(alice(1_000)));
        assert!(TicketUser::from_json("{}").is_none() && TicketUser::from_json("-").is_none());
    }
}
