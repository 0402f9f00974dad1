//! The listener: one accept loop and one way of serving a connection, for
//! plain HTTP and TLS alike, HTTP/1 (with WebSocket upgrades) and HTTP/2.
//!
//! What it guards against is a peer that holds descriptors without asking
//! for anything: every connection is watched ([`watch`]) — the first
//! request's head (TLS handshake and HTTP/2 preface included) and every
//! later head on a kept-alive connection must arrive within the header
//! timeout, a connection with nothing in flight closes after the idle
//! timeout, and so does one whose peer stopped reading. At the cap on open
//! connections (below the open-file limit, so `accept` never runs out of
//! descriptors) a new connection makes room by closing the oldest one that
//! has nothing in flight; when every connection is busy, the new one is
//! closed at once, unparsed. Requests on connections beyond
//! LETTA_BRIDGE_MAX_CONNECTIONS are refused (`503`) except the runtime's
//! own (`http::limits`), so the band between that limit and the cap is a
//! reserve that lets a runtime register and connect during a flood.
//!
//! Beyond the connect rate (LETTA_BRIDGE_CONNECT_RATE), a new connection
//! is still served but marked, and `http::limits` refuses its requests
//! (`429`) except, again, the runtime's own.
//!
//! Accept errors — such as running out of descriptors all the same — are
//! logged once per burst, with how many there were.

mod io;
mod rate;
mod service;
mod tls;
mod watch;

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::io::Counted;
use self::io::Tracked;
use self::rate::ConnectRate;
pub use self::rate::OverConnectRate;
use self::service::Tracking;
pub use self::tls::acceptor as tls_acceptor;
use self::watch::{Activity, Watched, now_ms};
pub use self::watch::{Closed, Timeouts};

/// Between two log lines about one kind of trouble (accept errors, a full
/// connection table).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not the peer's (e.g. `EMFILE`):
/// connections will close and free descriptors.
const BACKOFF: Duration = Duration::from_millis(100);

/// Descriptors the process keeps for everything but connections: the
/// listener, the runtime's poller, Redis, files, standard streams.
pub const OTHER_DESCRIPTORS: usize = 16;

use crate::metrics::{ACCEPT_ERRORS, CONNECTIONS_REFUSED as REFUSED_AT_ACCEPT};

/// How the listener serves.
#[derive(Clone)]
pub struct Settings {
    /// The header-read and idle timeouts.
    pub timeouts: Timeouts,
    /// Most connections open at once; beyond it a new connection closes
    /// the oldest idle one, or is closed itself.
    pub cap: usize,
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
    /// New connections per second (and the burst) before their requests
    /// are refused, the runtime's excepted ([`OverConnectRate`]).
    pub connect_rate: OverConnectRate,
}

/// Connections beyond LETTA_BRIDGE_MAX_CONNECTIONS kept at the least for the
/// runtime's own requests (registration and its WebSocket).
pub const MIN_RUNTIME_RESERVE: usize = 8;

/// The cap on open connections for an open-file limit of `files`: every
/// descriptor but [`OTHER_DESCRIPTORS`], and at least
/// [`MIN_RUNTIME_RESERVE`] beyond `max_connections`.
pub fn cap(files: u64, max_connections: usize) -> usize {
    let files = usize::try_from(files).unwrap_or(usize::MAX);
    files.saturating_sub(OTHER_DESCRIPTORS).max(max_connections.saturating_add(MIN_RUNTIME_RESERVE))
}

/// Connections the kernel queues until they are accepted (capped by
/// `net.core.somaxconn`, 4096 on current kernels). tokio's default is 1024:
/// when a burst of connections overflows it, the kernel drops the final
/// ACK of their handshakes, their clients send their requests into the
/// void and resend them with growing delays — seconds after the connection
/// is finally accepted, past the header timeout (seen with 9,000 event
/// streams opened 128 at a time: ~40 closed before their request arrived).
const BACKLOG: u32 = 4096;

/// Binds `addr` with [`BACKLOG`] (and `SO_REUSEADDR`, as tokio's
/// `TcpListener::bind` does, so a restart does not wait for old sockets).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Counts occurrences of one kind of trouble and logs them once per
/// [`LOG_EVERY`], with how many came since the last line.
#[derive(Default)]
struct Burst(Option<(Instant, u64)>);

impl Burst {
    /// Counts one; true when it is time to log (with the count suppressed since).
    fn note(&mut self) -> Option<u64> {
        let now = Instant::now();
        match &mut self.0 {
            Some((logged, since)) if now.duration_since(*logged) < LOG_EVERY => {
                *since += 1;
                None
            }
            _ => {
                let suppressed = self.0.map_or(0, |(_, n)| n);
                self.0 = Some((now, 0));
                Some(suppressed)
            }
        }
    }
}

/// The bound socket, its count of open connections and what it watches.
pub struct Listener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    settings: Settings,
    watched: Watched,
    errors: Burst,
    full: Burst,
}

impl Listener {
    /// Serves `inner`, counting its connections in `open`.
    pub fn new(inner: TcpListener, open: Arc<AtomicUsize>, settings: Settings) -> Self {
        Self { inner, open, settings, watched: Watched::default(), errors: Burst::default(), full: Burst::default() }
    }

    /// The next connection to serve, counted, with `TCP_NODELAY` (events
    /// and commands are small writes that must leave at once); waits out
    /// accept errors ([`BACKOFF`]) and closes what the cap refuses.
    async fn accept(&mut self) -> Counted {
        loop {
            self.wait_for_evicted().await;
            let stream = match self.inner.accept().await {
                Ok((stream, _)) => stream,
                // The peer's doing (reset before accept): nothing to say.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    ::metrics::counter!(ACCEPT_ERRORS).increment(1);
                    if let Some(suppressed) = self.errors.note() {
                        tracing::error!(error = %e, suppressed, "cannot accept connections (out of file descriptors?); new connections wait");
                    }
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            };
            let counted = Counted::new(stream, self.open.clone());
            if self.open.load(Ordering::Relaxed) > self.settings.cap && !self.watched.evict_one() {
                ::metrics::counter!(REFUSED_AT_ACCEPT).increment(1);
                if let Some(suppressed) = self.full.note() {
                    tracing::warn!(
                        cap = self.settings.cap,
                        suppressed,
                        "every connection is busy at the connection cap; closing new connections at once"
                    );
                }
                continue; // dropped: closed unparsed
            }
            if let Err(e) = counted.stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            return counted;
        }
    }
}

impl Listener {
    /// Above the cap (a connection told to close has not closed yet), waits
    /// for it, at most [`EVICTION_WAIT`]: descriptors freed before new ones
    /// are taken, so a flood never runs `accept` out of them.
    async fn wait_for_evicted(&self) {
        let until = tokio::time::Instant::now() + EVICTION_WAIT;
        while self.open.load(Ordering::Relaxed) > self.settings.cap && tokio::time::Instant::now() < until {
            tokio::time::sleep(EVICTION_POLL).await;
        }
    }
}

/// How long the accept loop waits for an evicted connection to close, and
/// how often it looks (a connection told to close drops its socket on its
/// next poll: microseconds).
const EVICTION_WAIT: Duration = Duration::from_millis(100);
const EVICTION_POLL: Duration = Duration::from_millis(1);

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// How often the watchdog looks at every connection: a quarter of the
/// shorter timeout, between 10 ms and 1 s (a look is a few atomic loads
/// per connection: ~50 µs for 20,000).
fn tick(t: Timeouts) -> Duration {
    (t.header.min(t.idle) / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops
/// accepting, lets every connection finish its responses (hyper's graceful
/// shutdown: no new requests on kept-alive connections) and returns once
/// all are closed. The watchdog runs in this loop, so it stops with it.
///
/// Why not `axum::serve`: it serves each connection with hyper-util's
/// protocol-detecting builder, which reads the first 24 bytes apart and
/// rewinds them, so hyper's first read returns 24 bytes and its read buffer
/// grows from 8 to 16 KiB on the next one, for the connection's life
/// (DHAT). Here the protocol is told by peeking (plain) or by ALPN (TLS),
/// and hyper's own connection reads from the first byte.
pub async fn serve(mut listener: Listener, app: axum::Router, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let timeouts = listener.settings.timeouts;
    let mut connect_rate = ConnectRate::new(listener.settings.connect_rate);
    let mut watchdog = tokio::time::interval(tick(timeouts));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let io = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = watchdog.tick() => {
                listener.watched.reap(now_ms(), timeouts);
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let over = connect_rate.admit();
        let activity = Arc::new(Activity::new());
        listener.watched.push(&activity);
        let tls = listener.settings.tls.clone();
        connections.spawn(serve_connection(Tracked::new(io, activity), tls, app.clone(), over, shutdown.clone()));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// What a connection turned out to speak.
enum Opened {
    Plain { io: Tracked<Counted>, h2: bool },
    Tls { io: Box<tokio_rustls::server::TlsStream<Tracked<Counted>>>, h2: bool },
}

/// Tells the protocol: TLS handshake and ALPN, or a peek for HTTP/2's
/// preface. Ends with an error when the watchdog closes the connection.
async fn open(io: Tracked<Counted>, tls: Option<TlsAcceptor>) -> std::io::Result<Opened> {
    match tls {
        None => {
            let h2 = io.opens_with_h2_preface().await?;
            Ok(Opened::Plain { io, h2 })
        }
        Some(acceptor) => {
            // Boxed: the handshake's state (~1.2 KB) would otherwise size
            // every connection's task, plain ones and idle streams included.
            let io = Box::pin(acceptor.accept(io)).await?;
            let h2 = io.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(Opened::Tls { io: Box::new(io), h2 })
        }
    }
}

/// One connection, until it closes (the watchdog closes it through its
/// socket: [`Tracked`]) or, after `shutdown`, its responses are done.
///
/// Only plain HTTP/1 — every SSE subscriber — is served inline: the other
/// protocols' state is boxed, so that it does not size every connection's
/// task (an idle subscriber's memory is mostly this task).
async fn serve_connection(
    io: Tracked<Counted>,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    over: Option<OverConnectRate>,
    shutdown: CancellationToken,
) {
    let activity = io.activity().clone();
    activity.started(now_ms());
    // A connection that has sent nothing yet closes at shutdown (as hyper
    // closes an idle kept-alive one).
    let opened = tokio::select! {
        opened = open(io, tls) => match opened {
            Ok(opened) => opened,
            Err(e) => return closed(&activity, &e),
        },
        () = shutdown.cancelled() => return,
    };
    let service = Tracking::new(app, activity.clone(), over);
    let served = match opened {
        // HTTP/1 with `release_idle_buffers`: a streaming response (an SSE subscriber) holds
        // no read or head buffer while it waits (the option vendor/hyper.patch adds).
        Opened::Plain { io, h2: false } => {
            let conn = http1::Builder::new().release_idle_buffers(true).serve_connection(TokioIo::new(io), service);
            until_closed(pin!(conn.with_upgrades()), shutdown, |c| c.graceful_shutdown()).await
        }
        Opened::Plain { io, h2: true } => Box::pin(serve_h2(io, service, &activity, shutdown)).await,
        Opened::Tls { io, h2: false } => {
            Box::pin(async move {
                let conn = http1::Builder::new().release_idle_buffers(true).serve_connection(TokioIo::new(io), service);
                until_closed(pin!(conn.with_upgrades()), shutdown, |c| c.graceful_shutdown()).await
            })
            .await
        }
        Opened::Tls { io, h2: true } => Box::pin(serve_h2(io, service, &activity, shutdown)).await,
    };
    match served {
        // An idle connection the listener closed ends cleanly (it read as ended).
        Ok(()) if activity.closing() => closed(&activity, &"closed"),
        Ok(()) => {}
        Err(e) => closed(&activity, &e),
    }
}

/// Serves `io` with hyper's HTTP/2 connection.
async fn serve_h2<IO>(io: IO, service: Tracking, activity: &Activity, shutdown: CancellationToken) -> hyper::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    activity.set_h2();
    let conn = http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(io), service);
    until_closed(pin!(conn), shutdown, |c| c.graceful_shutdown()).await
}

/// Drives `conn` to its end; once `shutdown` is cancelled, asks it to
/// finish gracefully first. (`conn` is pinned by the caller: moved in, it
/// would be stored twice in this future.)
async fn until_closed<C: Future>(
    mut conn: Pin<&mut C>,
    shutdown: CancellationToken,
    graceful: fn(Pin<&mut C>),
) -> C::Output {
    tokio::select! {
        served = conn.as_mut() => served,
        () = shutdown.cancelled() => {
            graceful(conn.as_mut());
            conn.await
        }
    }
}

/// How a connection ended, when not cleanly: said when the listener closed it.
fn closed(activity: &Activity, error: &dyn std::fmt::Display) {
    match activity.closed_for() {
        Some(why) => tracing::debug!(reason = why.label(), "connection closed by the listener"),
        None => tracing::trace!(error = %error, "connection ended with an error"),
    }
}

/// The soft limit of open files of this process (`/proc/self/limits`);
/// 1024 where it cannot be read.
pub fn open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

#[cfg(test)]
mod tests;
