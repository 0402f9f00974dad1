//! Stream tickets for browsers: `EventSource` cannot send an `Authorization`
//! header, so `POST /tickets` (bearer auth) hands out a short-lived,
//! single-use ticket that `GET /events?ticket=…` accepts once. Tickets are
//! the only credential accepted in a URL; request logs carry paths only, so
//! they never reach the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::Client;
use super::openapi::ReadProblems;

/// How long a ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// Most unredeemed tickets held at once (the oldest-expiring go first).
pub const MAX_TICKETS: usize = 10_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_ticket))
}

#[derive(Default)]
pub struct Tickets {
    /// Ticket → expiry. Short map operations only; never held across `.await`.
    live: Mutex<HashMap<String, Instant>>,
}

impl Tickets {
    /// A new ticket valid for [`TICKET_TTL`].
    pub fn issue(&self, now: Instant) -> String {
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

    /// True (once) for a ticket that was issued and has not expired.
    pub fn redeem(&self, ticket: &str, now: Instant) -> bool {
        self.lock().remove(ticket).is_some_and(|expires| expires > now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    /// Pass it as `GET /events?ticket=…`, once, within `expires_in` seconds.
    pub ticket: String,
    pub expires_in: u64,
    /// What it opens: always `events`.
    pub scope: &'static str,
}

/// A single-use ticket for one `GET /events?ticket=…` (for `EventSource`).
#[utoipa::path(post, path = "/tickets", tag = "events", security(("client" = [])),
    responses((status = 201, description = "A ticket valid for 60 s, for one event stream", body = Ticket), ReadProblems))]
async fn post_ticket(State(state): State<AppState>, _client: Client) -> (StatusCode, Json<Ticket>) {
    let ticket = state.tickets.issue(Instant::now());
    (StatusCode::CREATED, Json(Ticket { ticket, expires_in: TICKET_TTL.as_secs(), scope: "events" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once_and_only_before_it_expires() {
        let tickets = Tickets::default();
        let now = Instant::now();
        let t = tickets.issue(now);
        assert!(!tickets.redeem("tk_other", now));
        assert!(tickets.redeem(&t, now));
        assert!(!tickets.redeem(&t, now), "single use");
        let late = tickets.issue(now);
        assert!(!tickets.redeem(&late, now + TICKET_TTL + Duration::from_millis(1)));
    }
}
