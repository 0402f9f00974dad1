//! `POST /tickets`: stream tickets for browsers. `EventSource` cannot send an
//! `Authorization` header, so a client with its bearer token gets a ticket
//! for `GET /events?ticket=…`, good for one stream and that stream's
//! reconnects (the rules: [`crate::store::TicketStore`]). A ticket minted
//! with an end user's token carries the user: its stream reads what the
//! user may read and ends at the token's `exp`. Tickets are the
//! only credential accepted in a URL; request logs carry paths only, so they
//! never reach the log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::Client;
use super::openapi::ReadProblems;
use super::{ApiError, AppState};
use crate::store::{TICKET_TTL, unix_now};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_ticket))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    /// Open `GET /events?ticket=…` with it within `expires_in` seconds. The
    /// same URL then serves that stream's reconnects (EventSource's own):
    /// while a stream holds the ticket and for 60 s after it ended. Minted
    /// with an end user's token: never after the token's `exp`.
    pub ticket: String,
    pub expires_in: u64,
    /// What it opens: always `events`.
    pub scope: &'static str,
}

/// A ticket for one `GET /events?ticket=…` stream and its reconnects (for `EventSource`).
#[utoipa::path(post, path = "/tickets", tag = "events", security(("client" = [])),
    responses((status = 201, description = "A ticket for one event stream and its reconnects: valid 60 s until used", body = Ticket), ReadProblems))]
async fn post_ticket(
    State(state): State<AppState>,
    Client(role): Client,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let ticket = state.tickets.issue(&role).await?;
    // An end user's ticket opens nothing after the token's `exp`.
    let token_left = role.user().map_or(u64::MAX, |u| u.exp.saturating_sub(unix_now()));
    let expires_in = TICKET_TTL.as_secs().min(token_left);
    Ok((StatusCode::CREATED, Json(Ticket { ticket, expires_in, scope: "events" })))
}
