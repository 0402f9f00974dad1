//! The plain (non-TLS) listener: its accept loop counts the open
//! connections (for LETTA_BRIDGE_MAX_CONNECTIONS), sets `TCP_NODELAY`
//! (events and commands are small writes that must leave at once), and
//! logs accept errors — such as running out of file descriptors — once per
//! burst, with how many there were, instead of once per failed accept; and
//! [`serve`] gives each connection to hyper's HTTP/1 server (HTTP/2 for
//! clients that open with its preface), with graceful shutdown.

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

    /// The next connection, counted and with `TCP_NODELAY`; waits out
    /// accept errors (see [`BACKOFF`]).
    async fn accept(&mut self) -> Counted {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    self.open.fetch_add(1, Ordering::Relaxed);
                    return Counted { stream, open: self.open.clone() };
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

/// HTTP/2's connection preface: a client with prior knowledge (cleartext
/// `h2c`, e.g. `curl --http2-prior-knowledge`) opens with it.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// While only part of the preface has arrived: how long to wait before
/// looking again, and how many times.
const PREFACE_POLL: Duration = Duration::from_millis(10);
const PREFACE_POLLS: u32 = 500;

impl Counted {
    /// Whether the client opened with HTTP/2's preface. Peeks (`MSG_PEEK`)
    /// rather than reads, so the chosen server reads every byte itself and
    /// no rewind buffer is kept; waits for the first bytes, and is `false`
    /// from the first byte that differs (`G` of `GET`) or at end of stream.
    async fn opens_with_h2_preface(&self) -> io::Result<bool> {
        let mut buf = [0u8; H2_PREFACE.len()];
        for _ in 0..PREFACE_POLLS {
            let n = self.stream.peek(&mut buf).await?;
            if n == 0 || buf[..n] != H2_PREFACE[..n] {
                return Ok(false);
            }
            if n == buf.len() {
                return Ok(true);
            }
            // A preface in pieces (rare): peeking again at once would only
            // return the same bytes; unless the client has closed its side.
            if self.stream.ready(Interest::READABLE).await?.is_read_closed() {
                return Ok(false);
            }
            tokio::time::sleep(PREFACE_POLL).await;
        }
        Ok(false)
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops
/// accepting, lets every connection finish its responses (hyper's graceful
/// shutdown: no new requests on kept-alive connections) and returns once
/// all are closed.
///
/// Why not `axum::serve`: it serves each connection with hyper-util's
/// protocol-detecting builder, which reads the first 24 bytes apart and
/// rewinds them, so hyper's first read returns 24 bytes and its read buffer
/// grows from 8 to 16 KiB on the next one, for the connection's life
/// (DHAT). Here the protocol is told by peeking, and hyper's own HTTP/1
/// connection (with upgrades, for WebSockets) or HTTP/2 connection reads
/// from the first byte.
pub async fn serve(mut listener: CountingListener, app: axum::Router, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let io = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        connections.spawn(serve_connection(io, app.clone(), shutdown.clone()));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One connection, until it closes or, after `shutdown`, its responses are done.
async fn serve_connection(io: Counted, app: axum::Router, shutdown: CancellationToken) {
    // A connection that has sent nothing yet closes at shutdown (as hyper
    // closes an idle kept-alive one).
    let h2 = tokio::select! {
        h2 = io.opens_with_h2_preface() => match h2 {
            Ok(h2) => h2,
            Err(e) => return tracing::debug!(error = %e, "connection closed before a request"),
        },
        () = shutdown.cancelled() => return,
    };
    let (io, service) = (TokioIo::new(io), TowerToHyperService::new(app));
    let served = if h2 {
        // Boxed: HTTP/2's connection state (~1.5 KB) is rare here, and
        // inline it would size every HTTP/1 connection's task.
        Box::pin(async move {
            let conn = pin!(http2::Builder::new(TokioExecutor::new()).serve_connection(io, service));
            until_closed(conn, shutdown, |c| c.graceful_shutdown()).await
        })
        .await
    } else {
        let conn = pin!(http1::Builder::new().serve_connection(io, service).with_upgrades());
        until_closed(conn, shutdown, |c| c.graceful_shutdown()).await
    };
    if let Err(e) = served {
        tracing::trace!(error = %e, "connection ended with an error");
    }
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
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A connected pair: the client's end, and the server's as accepted.
    async fn pair() -> (TcpStream, Counted) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, Counted { stream: server, open: Arc::default() })
    }

    #[tokio::test]
    async fn the_h2_preface_is_told_apart_from_http1_without_consuming_a_byte() {
        let (mut client, server) = pair().await;
        client.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        assert!(!server.opens_with_h2_preface().await.unwrap());
        let mut peeked = [0u8; 3];
        server.stream.peek(&mut peeked).await.unwrap();
        assert_eq!(&peeked, b"GET", "the server reads the request from its first byte");

        let (mut client, server) = pair().await;
        client.write_all(H2_PREFACE).await.unwrap();
        assert!(server.opens_with_h2_preface().await.unwrap());
    }

    #[tokio::test]
    async fn a_preface_in_pieces_is_waited_for_and_a_partial_one_then_eof_is_not_http2() {
        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        let rest = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.write_all(&H2_PREFACE[5..]).await.unwrap();
            client
        });
        assert!(server.opens_with_h2_preface().await.unwrap());
        drop(rest.await);

        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..3]).await.unwrap();
        client.shutdown().await.unwrap();
        let told = tokio::time::timeout(Duration::from_secs(1), server.opens_with_h2_preface()).await;
        assert!(!told.expect("no wait after the client closed").unwrap());
    }
}
