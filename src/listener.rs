//! The accept loop of the plain (non-TLS) listener: it counts the open
//! connections (for LETTA_BRIDGE_MAX_CONNECTIONS), sets `TCP_NODELAY`
//! (events and commands are small writes that must leave at once), and
//! logs accept errors — such as running out of file descriptors — once per
//! burst, with how many there were, instead of once per failed accept.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Between two log lines about accept errors.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not the peer's (e.g. `EMFILE`):
/// connections will close and free descriptors.
const BACKOFF: Duration = Duration::from_millis(100);

pub(crate) const ACCEPT_ERRORS: &str = "letta_bridge_accept_errors_total";

/// A listener that counts its open connections.
pub struct CountingListener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    /// When the last error was logged, and how many came since.
    errors: Option<(Instant, u64)>,
}

impl CountingListener {
    /// Counts `inner`'s connections in `open`.
    pub fn new(inner: TcpListener, open: Arc<AtomicUsize>) -> Self {
        Self { inner, open, errors: None }
    }

    fn note_error(&mut self, e: &io::Error) {
        ::metrics::counter!(ACCEPT_ERRORS).increment(1);
        let now = Instant::now();
        match &mut self.errors {
            Some((logged, since)) if now.duration_since(*logged) < LOG_EVERY => *since += 1,
            _ => {
                let suppressed = self.errors.map_or(0, |(_, n)| n);
                tracing::error!(error = %e, suppressed, "cannot accept connections (out of file descriptors?); new connections wait");
                self.errors = Some((now, 0));
            }
        }
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    self.open.fetch_add(1, Ordering::Relaxed);
                    return (Counted { stream, open: self.open.clone() }, addr);
                }
                // The peer's doing (reset before accept): nothing to say.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    self.note_error(&e);
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// A connection, counted until it is dropped.
pub struct Counted {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
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
