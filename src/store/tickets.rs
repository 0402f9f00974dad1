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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::StoreFuture;

/// How long an unused ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// How long a ticket stays valid after the stream holding it ended.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(60);

/// Most tickets held at once (the oldest-expiring unheld ones go first).
pub const MAX_TICKETS: usize = 10_000;

/// Where tickets are issued and opened.
pub trait TicketStore: Send + Sync + 'static {
    /// A new ticket valid for [`TICKET_TTL`] until a stream holds it.
    fn issue(&self) -> StoreFuture<'_, String>;
    /// Opens a stream with `ticket`; `None` when it is unknown or expired.
    /// A stream holding it already is ended (taken over).
    fn open<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, Option<TicketHold>>;
}

/// A stream's hold on its ticket. [`TicketHold::taken`] resolves when
/// another stream takes the ticket over; dropping the hold starts the
/// ticket's [`RECONNECT_GRACE`].
pub struct TicketHold {
    taken: CancellationToken,
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl TicketHold {
    /// A hold whose `taken` token the store cancels on takeover, and which
    /// calls `release` when dropped.
    pub fn new(taken: CancellationToken, release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self { taken, release: Some(Box::new(release)) }
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
}

impl MemoryTickets {
    /// Tickets shared by the handlers.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A new ticket valid for [`TICKET_TTL`] from `now`.
    pub fn issue_at(&self, now: Instant) -> String {
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
        state.tickets.insert(ticket.clone(), Ticket { expires: Some(now + TICKET_TTL), hold: None });
        ticket
    }

    /// Opens a stream with `ticket` at `now`.
    pub fn open_at(self: &Arc<Self>, ticket: &str, now: Instant) -> Option<TicketHold> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let entry = state.tickets.get_mut(ticket)?;
        if entry.expires.is_some_and(|e| e <= now) {
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
        drop(guard);
        let (store, ticket) = (self.clone(), ticket.to_owned());
        Some(TicketHold::new(taken, move || store.release(&ticket, id, Instant::now())))
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
    fn issue(&self) -> StoreFuture<'_, String> {
        let ticket = self.issue_at(Instant::now());
        Box::pin(async move { Ok(ticket) })
    }

    fn open<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, Option<TicketHold>> {
        let hold = self.open_at(ticket, Instant::now());
        Box::pin(async move { Ok(hold) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unused_ticket_expires_after_its_ttl() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now);
        assert!(tickets.open_at("tk_other", now).is_none());
        assert!(tickets.open_at(&t, now + TICKET_TTL + Duration::from_millis(1)).is_none());
    }

    #[test]
    fn a_held_ticket_does_not_expire_and_reopens_within_the_grace_after_its_stream_ended() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now);
        let hold = tickets.open_at(&t, now).expect("opens");
        let hours = now + Duration::from_secs(5 * 3600);
        tickets.release(&t, 1, hours);
        drop(hold);
        let within = hours + RECONNECT_GRACE - Duration::from_secs(1);
        let again = tickets.open_at(&t, within).expect("a reconnect hours after issue, within the grace");
        assert!(!again.taken.is_cancelled());
    }

    #[test]
    fn a_ticket_is_dead_once_the_grace_after_its_stream_passed() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now);
        let hold = tickets.open_at(&t, now).unwrap();
        std::mem::forget(hold); // released by hand at a chosen time
        tickets.release(&t, 1, now);
        assert!(tickets.open_at(&t, now + RECONNECT_GRACE + Duration::from_millis(1)).is_none());
    }

    #[test]
    fn opening_a_held_ticket_takes_it_over_and_ends_the_earlier_stream() {
        let tickets = MemoryTickets::new();
        let now = Instant::now();
        let t = tickets.issue_at(now);
        let first = tickets.open_at(&t, now).unwrap();
        let second = tickets.open_at(&t, now).unwrap();
        assert!(first.taken.is_cancelled(), "the earlier stream ends");
        assert!(!second.taken.is_cancelled());
        drop(first); // the earlier stream ending does not release the ticket
        assert!(tickets.lock().tickets[&t].expires.is_none(), "still held by the second stream");
    }
}
