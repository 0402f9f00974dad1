//! Each request's span and access log: the span (`http`, with the method,
//! the path — never the query: it may carry tickets — and the request id)
//! covers the request's handling, so that everything logged for it says
//! which request it was; the access log is one `info` line per request in
//! it with the status and the time to the response head. An event stream
//! logs its end itself, with its request id (`events`): the span ends with
//! the handler, as an idle subscriber holding one cost ~0.5 KB of the
//! subscriber registry's memory (bench `memory`). Off like any other line
//! with `RUST_LOG` (e.g. `letta_bridge::http::access_log=warn`).

use std::time::Instant;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry;

/// Handles `req` in its span and logs its answer. An event stream's end is
/// logged by the stream itself (`events`).
pub async fn log(req: Request, next: Next) -> Response {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    if !telemetry::traces_on() {
        let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id);
        return respond(req, next).instrument(span).await;
    }
    let (method, path) = (req.method(), req.uri().path());
    let span = tracing::info_span!("http", method = %method, path = %path, request_id = %id, otel.kind = "server");
    if let Some(parent) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
        telemetry::continue_trace(&span, parent);
    }
    respond(req, next).instrument(span).await
}

async fn respond(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    telemetry::answered(status);
    let ms = (start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    let what = if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        "request: upgraded to a WebSocket"
    } else if is_event_stream(&response) {
        "request: event stream opened"
    } else {
        "request"
    };
    tracing::info!(status, ms, "{what}");
    response
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}
