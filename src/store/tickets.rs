//! Stream tickets: short-lived, single-use credentials that a browser's
//! `EventSource` (which cannot send an `Authorization` header) puts in the
//! URL of one `GET /events`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::StoreFuture;

/// How long a ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// Most unredeemed tickets held at once (the oldest-expiring go first).
pub const MAX_TICKETS: usize = 10_000;

/// Where tickets are issued and redeemed.
pub trait TicketStore: Send + Sync + 'static {
    /// A new ticket valid for [`TICKET_TTL`].
    fn issue(&self) -> StoreFuture<'_, String>;
    /// True (once) for a ticket that was issued and has not expired.
    fn redeem<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, bool>;
}

/// Tickets in this process's memory.
#[derive(Default)]
pub struct MemoryTickets {
    /// Ticket → expiry. Short map operations only; never held across `.await`.
    live: Mutex<HashMap<String, Instant>>,
}

impl MemoryTickets {
    /// A new ticket valid for [`TICKET_TTL`] from `now`.
    pub fn issue_at(&self, now: Instant) -> String {
        let ticket = format!("tk_{}", uuid::Uuid::new_v4().simple());
        let mut live = self.lock();
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX_TICKETS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(t, _)| t.clone())
        {
            live.remove(&oldest);
        }
        live.insert(ticket.clone(), now + TICKET_TTL);
        ticket
    }

    /// True (once) for a ticket that was issued and has not expired at `now`.
    pub fn redeem_at(&self, ticket: &str, now: Instant) -> bool {
        self.lock().remove(ticket).is_some_and(|expires| expires > now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TicketStore for MemoryTickets {
    fn issue(&self) -> StoreFuture<'_, String> {
        let ticket = self.issue_at(Instant::now());
        Box::pin(async move { Ok(ticket) })
    }

    fn redeem<'a>(&'a self, ticket: &'a str) -> StoreFuture<'a, bool> {
        let ok = self.redeem_at(ticket, Instant::now());
        Box::pin(async move { Ok(ok) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_and_only_before_it_expires() {
        let tickets = MemoryTickets::default();
        let now = Instant::now();
        let t = tickets.issue_at(now);
        assert!(!tickets.redeem_at("tk_other", now));
        assert!(tickets.redeem_at(&t, now));
        assert!(!tickets.redeem_at(&t, now), "single use");
        let late = tickets.issue_at(now);
        assert!(!tickets.redeem_at(&late, now + TICKET_TTL + Duration::from_millis(1)));
    }
}
