//! Browser access: CORS for an explicit origin allow-list (none by default),
//! and `403` for any request whose `Origin` is neither on the list nor this
//! bridge itself (the web console is same-origin). Non-browser clients send
//! no `Origin` and are not affected.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::ApiError;

/// The CORS layer for `origins`, or `None` when the list is empty.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::LINK,
                // RFC 6750's `invalid_token` / `insufficient_scope` for a page
                // holding an end user's token.
                header::WWW_AUTHENTICATE,
                HeaderName::from_static("idempotent-replayed"),
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Refuses requests from origins that are not allowed.
pub async fn check_origin(State(allowed): State<Arc<[String]>>, req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return next.run(req).await };
    let origin = origin.to_str().unwrap_or("");
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let same_origin =
        !host.is_empty() && origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host));
    if same_origin || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return next.run(req).await;
    }
    ApiError::Forbidden(format!("origin {origin:?} is not allowed; add it to LETTA_BRIDGE_CORS_ORIGINS"))
        .into_response()
}
