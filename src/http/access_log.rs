//! The access log: one `info` line per request — method, path (never the
//! query: it may carry tickets), status, time to the response head and
//! request id, the last three from the request's span — and for an event
//! stream one line when it opens and one when it closes, with how long it
//! lasted. Off like any other line with `RUST_LOG` (e.g.
//! `letta_bridge::http::access_log=warn`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// Logs `req`'s answer (the request's span carries its method, path and id).
pub async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let ms = elapsed_ms(start);
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        tracing::info!(status, ms, "request: upgraded to a WebSocket");
        return response;
    }
    if !is_event_stream(&response) {
        tracing::info!(status, ms, "request");
        return response;
    }
    tracing::info!(status, ms, "request: event stream opened");
    let closed = StreamClosed { opened: Instant::now(), span: tracing::Span::current() };
    response.map(|inner| Body::new(Logged { inner, _closed: closed }))
}

fn elapsed_ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

/// Logs the end of an event stream when its body is dropped (the stream
/// ended, or the client left).
struct StreamClosed {
    opened: Instant,
    span: tracing::Span,
}

impl Drop for StreamClosed {
    fn drop(&mut self) {
        let _in = self.span.enter();
        let secs = (self.opened.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        tracing::info!(secs, "event stream closed");
    }
}

/// An event stream's body, logged when it ends.
struct Logged {
    inner: Body,
    _closed: StreamClosed,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
