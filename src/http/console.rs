//! `GET /`: the web console, one self-contained page (inline CSS and JS, no
//! CDN) compiled into the binary. It runs a whole session through the public
//! API only: creates an agent and a conversation (`runtime_start`, admin
//! token) or picks a conversation seen on the event stream, sends messages
//! (`POST /input`), streams the replies, tool calls and their results,
//! answers tool approvals (`POST /approval`), aborts turns (`POST /abort`),
//! and resumes the stream after drops (a new ticket and `last_event_id`).

use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;

const PAGE: &str = include_str!("../../assets/console.html");

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_console))
}

/// The web console (HTML; it asks for the client token and keeps it in the tab's session storage).
#[utoipa::path(get, path = "/", tag = "status", responses((status = 200, description = "The console page", content_type = "text/html", body = String)))]
async fn get_console() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // Everything is inline; nothing may load from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}
