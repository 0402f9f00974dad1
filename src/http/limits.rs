//! Connection limits, stated and enforced: at most `max_connections` HTTP
//! connections and `max_streams` long-lived streams (event streams and
//! Letta clients' sockets) at once. Refusals are `503` with `Retry-After`
//! (problem+json) and counted in `/metrics`. Per credential ([`Quotas`]):
//! a stream also takes a place under its credential's limit, and a
//! credential's every request a token from its rate ([`admit`]); a
//! connection the listener accepted beyond the connect rate is refused
//! (`429`) on everything but the runtime's paths. Those refusals are `429`
//! (`urn:letta-bridge:rate-limited`, naming the limit).
//!
//! The defaults come from the open-file limit at start: a reserve is kept
//! beyond `max_connections` for runtime sockets, Redis and files, and
//! `max_streams` stays below `max_connections`, so a flood of subscribers
//! can never lock a runtime out of its WebSocket: the runtime's own paths
//! (registration, `/ws`, `/ws/{id}`) are not subject to the connection cap
//! either: the listener keeps a reserve of connections beyond it for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::listener::OverConnectRate;
use crate::protocol::Role;
use crate::quota::{Quotas, RATE_LIMITED, StreamQuota};

pub(super) use crate::metrics::REFUSED;

/// The limits and what is open now. Cheap to share (`Arc`).
pub struct Limits {
    /// HTTP connections open now (kept by the listener).
    pub connections: Arc<AtomicUsize>,
    /// Most HTTP connections served at once.
    pub max_connections: usize,
    /// Streams open now.
    streams: AtomicUsize,
    /// Most streams open at once.
    pub max_streams: usize,
    /// Per-credential limits.
    pub quotas: Arc<Quotas>,
}

/// A stream's place under [`Limits::max_streams`] and under its
/// credential's limit; freed when dropped.
pub struct StreamSlot(Arc<Limits>, #[allow(dead_code)] Option<StreamQuota>);

impl Limits {
    /// Limits of `max_connections` connections (counted in `connections`),
    /// `max_streams` streams, and per credential `quotas`.
    pub fn new(
        connections: Arc<AtomicUsize>,
        max_connections: usize,
        max_streams: usize,
        quotas: Arc<Quotas>,
    ) -> Arc<Self> {
        Arc::new(Self { connections, max_connections, streams: AtomicUsize::new(0), max_streams, quotas })
    }

    /// The defaults for an open-file limit of `files`: a reserve of a
    /// twentieth (at least 32) for runtimes, Redis and files; streams a
    /// further twentieth (at least 16) below the connections.
    pub fn defaults(files: u64) -> (usize, usize) {
        let files = usize::try_from(files).unwrap_or(usize::MAX).max(128);
        let connections = files - (files / 20).max(32);
        let streams = connections - (files / 20).max(16);
        (connections, streams)
    }

    /// A slot for a new stream of `role`: a `429` when its credential holds
    /// its most streams, a `503` when every slot is taken.
    pub fn stream(self: &Arc<Self>, role: &Role) -> Result<StreamSlot, ApiError> {
        let quota = self.quotas.stream(role)?;
        let taken = self.streams.fetch_add(1, Ordering::AcqRel);
        if taken >= self.max_streams {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            ::metrics::counter!(REFUSED, "reason" => "streams").increment(1);
            return Err(ApiError::TooManyStreams(format!(
                "{} streams are open, the most this bridge serves (LETTA_BRIDGE_MAX_STREAMS); retry later",
                self.max_streams
            )));
        }
        Ok(StreamSlot(self.clone(), quota))
    }

    /// HTTP connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Streams open now.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one request of `role` against its credential's rate: the check
/// every door's caller passes once its token is known (a `429` beyond it).
pub async fn admit(limits: &Limits, role: &Role) -> Result<(), ApiError> {
    Ok(limits.quotas.request(role).await?)
}

/// A credential's limit as the HTTP doors answer it: `429` naming the limit.
impl From<crate::quota::Limited> for ApiError {
    fn from(limited: crate::quota::Limited) -> Self {
        Self::RateLimited {
            limit: limited.reason(),
            detail: limited.to_string(),
            retry_after: limited.retry_after_secs(),
        }
    }
}

/// Refuses requests on connections beyond `max_connections`, and on
/// connections accepted beyond the connect rate (the runtime's own
/// requests excepted: the reserve is theirs; the probes too, from the
/// connect rate).
pub async fn check_connections(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    if let Some(over) = req.extensions().get::<OverConnectRate>()
        && !is_runtime_path(req.uri().path())
        && !is_probe(req.uri().path())
    {
        ::metrics::counter!(RATE_LIMITED, "reason" => "connect").increment(1);
        let mut response = ApiError::RateLimited {
            limit: "connect",
            detail: format!(
                "this instance accepts at most {} new connections per second (burst {}; LETTA_BRIDGE_CONNECT_RATE, LETTA_BRIDGE_CONNECT_BURST); retry later",
                over.per_second, over.burst
            ),
            retry_after: 1,
        }
        .into_response();
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    }
    let open = limits.open_connections();
    if open > limits.max_connections && !is_runtime_path(req.uri().path()) {
        ::metrics::counter!(REFUSED, "reason" => "connections").increment(1);
        let mut response = ApiError::TooManyConnections(format!(
            "{open} connections are open, more than this bridge serves ({}, LETTA_BRIDGE_MAX_CONNECTIONS); retry later",
            limits.max_connections
        ))
        .into_response();
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    }
    next.run(req).await
}

/// The orchestrator's probes: a flood of connections must not make an
/// instance look dead or unready.
fn is_probe(path: &str) -> bool {
    path == "/healthz" || path == "/readyz"
}

/// The runtime's own requests: its registration, its health check and its
/// WebSocket.
fn is_runtime_path(path: &str) -> bool {
    path == "/ws" || path.starts_with("/ws/") || path == "/v1/environments/register" || path == "/v1/health"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_a_reserve_beyond_the_connections_and_the_streams_below_them() {
        assert_eq!(Limits::defaults(1024), (973, 922));
        let (connections, streams) = Limits::defaults(1 << 20);
        assert!(streams < connections && connections < 1 << 20);
        let (c, s) = Limits::defaults(10);
        assert!(s < c && c < 128, "a tiny limit still leaves room: {c} {s}");
    }

    #[test]
    fn stream_slots_are_bounded_and_freed() {
        let rate = crate::store::Rate { per_second: 1.0, burst: 1 };
        let limit = crate::quota::Limit { rate: Some(rate), streams: Some(100) };
        let settings = crate::quota::Settings { user: limit, client: limit };
        let quotas = Quotas::new(settings, Arc::new(crate::store::MemoryRates::default()));
        let limits = Limits::new(Arc::default(), 10, 2, quotas);
        let a = limits.stream(&Role::Client).unwrap();
        let _b = limits.stream(&Role::Client).unwrap();
        assert!(limits.stream(&Role::Client).is_err());
        drop(a);
        assert!(limits.stream(&Role::Client).is_ok());
        assert_eq!(limits.streams(), 1, "the last slot was dropped at once");
    }
}
