//! One delivery attempt: a POST over HTTP/1.1 ([`crate::outbound`]) to the
//! address the SSRF guard checked. No
//! redirects, no proxy, one connection per attempt, bounded by
//! [`ATTEMPT_TIMEOUT`]; the answer's body is not read. With traces on,
//! each attempt is a `webhook.delivery` span whose W3C `traceparent` the
//! request carries.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{Request, StatusCode, header};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::target::Target;
use crate::{outbound, telemetry};

/// Longest one attempt may take, connection and TLS included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// The headers of one attempt (Standard Webhooks' three).
pub struct Signed<'a> {
    /// `webhook-id`: the delivery's id, the same on every attempt.
    pub id: &'a str,
    /// `webhook-timestamp`, Unix seconds of this attempt.
    pub timestamp: u64,
    /// `webhook-signature`.
    pub signature: &'a str,
}

/// POSTs `body` to `target` at `addr`; the answer's status, or why none.
pub async fn post(
    target: &Target,
    addr: SocketAddr,
    signed: &Signed<'_>,
    body: bytes::Bytes,
) -> Result<StatusCode, String> {
    let span = if telemetry::traces_on() {
        // The receiver's authority, never its path (it may hold a secret).
        let to = &target.authority;
        tracing::info_span!(parent: None, "webhook.delivery", otel.kind = "client", webhook.id = signed.id, server.address = %to, status = Empty)
    } else {
        Span::none()
    };
    let traceparent = telemetry::traceparent(&span);
    let attempt = attempt(target, addr, signed, body, traceparent.as_deref());
    let sent = match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).instrument(span.clone()).await {
        Ok(done) => done,
        Err(_) => Err(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
    };
    if let Ok(status) = &sent {
        span.record("status", status.as_u16());
    }
    sent
}

async fn attempt(
    target: &Target,
    addr: SocketAddr,
    signed: &Signed<'_>,
    body: bytes::Bytes,
    traceparent: Option<&str>,
) -> Result<StatusCode, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    if !target.https {
        return exchange(target, tcp, signed, body, traceparent).await;
    }
    let tls = outbound::tls()?;
    let name = ServerName::try_from(target.host.clone()).map_err(|e| format!("{}: {e}", target.host))?;
    let stream = tls.connect(name, tcp).await.map_err(|e| format!("TLS with {}: {e}", target.authority))?;
    exchange(target, stream, signed, body, traceparent).await
}

async fn exchange<IO>(
    target: &Target,
    io: IO,
    signed: &Signed<'_>,
    body: bytes::Bytes,
    traceparent: Option<&str>,
) -> Result<StatusCode, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut request = Request::post(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, concat!("letta-bridge/", env!("CARGO_PKG_VERSION")))
        .header(header::CONNECTION, "close")
        .header("webhook-id", signed.id)
        .header("webhook-timestamp", signed.timestamp.to_string())
        .header("webhook-signature", signed.signature)
        .body(outbound::Body::new(body))
        .map_err(|e| e.to_string())?;
    if let Some(traceparent) = traceparent.and_then(|t| t.parse().ok()) {
        request.headers_mut().insert("traceparent", traceparent);
    }
    Ok(outbound::send(io, request).await.map_err(|e| e.to_string())?.status())
}
