//! `POST /tickets`: stream tickets for browsers. `EventSource` cannot send an
//! `Authorization` header, so a client with its bearer token gets a
//! short-lived, single-use ticket that `GET /events?ticket=…` accepts once.
//! Tickets are the only credential accepted in a URL; request logs carry
//! paths only, so they never reach the log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::Client;
use super::openapi::ReadProblems;
use super::{ApiError, AppState};
use crate::store::TICKET_TTL;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_ticket))
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
async fn post_ticket(State(state): State<AppState>, _client: Client) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let ticket = state.tickets.issue().await?;
    Ok((StatusCode::CREATED, Json(Ticket { ticket, expires_in: TICKET_TTL.as_secs(), scope: "events" })))
}
