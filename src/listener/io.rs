//! A connection's socket as the listener hands it on: [`Counted`] keeps
//! the count of open connections (down again when the socket is dropped,
//! whatever became of it: served, upgraded to a WebSocket, or closed), and
//! [`Tracked`] tells the connection's [`Activity`] when bytes arrive and
//! when writes stall, for the header-read and idle timeouts — and, once
//! the listener told the connection to close, reads as ended and fails
//! writes, so that whoever serves it (the preface check, the TLS handshake,
//! hyper) ends it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::watch::Activity;

/// An accepted TCP connection, counted until it is dropped.
pub struct Counted {
    pub(super) stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Counted {
    /// Counts `stream` in `open` until dropped.
    pub fn new(stream: TcpStream, open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self { stream, open }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket (plain or TLS) whose reads and writes its [`Activity`] hears of.
pub struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Tracked<IO> {
    /// `io`, reporting to `activity`.
    pub fn new(io: IO, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }

    /// The connection's record.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    fn wrote<T>(&self, cx: &Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &polled {
            Poll::Pending => {
                self.activity.on_write_blocked();
                self.activity.waiting(cx.waker());
            }
            Poll::Ready(_) => self.activity.on_write_progress(),
        }
        polled
    }

    /// The error every write gets once the listener closed the connection.
    fn closed() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "closed by the listener (a timeout, or to make room)")
    }
}

/// HTTP/2's connection preface: a client with prior knowledge (cleartext
/// `h2c`, e.g. `curl --http2-prior-knowledge`) opens with it.
pub(super) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// While only part of the preface has arrived: how long to wait before
/// looking again. (The header timeout bounds the whole wait.)
const PREFACE_POLL: std::time::Duration = std::time::Duration::from_millis(10);

impl Tracked<Counted> {
    /// Whether the client opened with HTTP/2's preface. Peeks (`MSG_PEEK`)
    /// rather than reads, so the chosen server reads every byte itself and
    /// no rewind buffer is kept; waits for the first bytes (until the
    /// listener closes the connection), and is `false` from the first byte
    /// that differs (`G` of `GET`) or at end of stream.
    pub async fn opens_with_h2_preface(&self) -> io::Result<bool> {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let n = std::future::poll_fn(|cx| self.poll_peek(cx, &mut buf)).await?;
            if n == 0 || buf[..n] != H2_PREFACE[..n] {
                return Ok(false);
            }
            if n == buf.len() {
                return Ok(true);
            }
            // A preface in pieces (rare): peeking again at once would only
            // return the same bytes; unless the client has closed its side.
            if self.io.stream.ready(Interest::READABLE).await?.is_read_closed() {
                return Ok(false);
            }
            tokio::time::sleep(PREFACE_POLL).await;
        }
    }

    fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.activity.closing() {
            return Poll::Ready(Err(Self::closed()));
        }
        let mut read = ReadBuf::new(buf);
        match self.io.stream.poll_peek(cx, &mut read) {
            Poll::Pending => {
                self.activity.waiting(cx.waker());
                Poll::Pending
            }
            Poll::Ready(peeked) => Poll::Ready(peeked),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.activity.closing() {
            return Poll::Ready(Ok(())); // the end of the stream
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.activity.on_read(),
            Poll::Pending => self.activity.waiting(cx.waker()),
            _ => {}
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.activity.closing() {
            return Poll::Ready(Err(Self::closed()));
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.closing() {
            return Poll::Ready(Err(Self::closed()));
        }
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.wrote(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.activity.closing() {
            return Poll::Ready(Err(Self::closed()));
        }
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A connected pair: the client's end, and the server's as accepted.
    async fn raw_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    async fn pair() -> (TcpStream, Tracked<Counted>) {
        let (client, server) = raw_pair().await;
        (client, Tracked::new(Counted::new(server, Arc::default()), Arc::new(Activity::new())))
    }

    #[tokio::test]
    async fn the_h2_preface_is_told_apart_from_http1_without_consuming_a_byte() {
        let (mut client, server) = pair().await;
        client.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        assert!(!server.opens_with_h2_preface().await.unwrap());
        let mut peeked = [0u8; 3];
        server.io.stream.peek(&mut peeked).await.unwrap();
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

    #[tokio::test]
    async fn a_connection_told_to_close_reads_as_ended_and_its_waiting_task_is_woken() {
        use tokio::io::AsyncReadExt;
        let (_client, mut server) = pair().await;
        let activity = server.activity().clone();
        let mut buf = [0u8; 8];
        let read = tokio::spawn(async move { server.read(&mut buf).await });
        tokio::task::yield_now().await; // the read waits on the silent socket
        activity.close(super::super::watch::Closed::HeaderTimeout);
        let n = tokio::time::timeout(Duration::from_secs(1), read).await.expect("woken").unwrap().unwrap();
        assert_eq!(n, 0, "the end of the stream");

        let (_client, server) = pair().await;
        server.activity().close(super::super::watch::Closed::Evicted);
        let told = tokio::time::timeout(Duration::from_secs(1), server.opens_with_h2_preface()).await.unwrap();
        assert!(told.is_err(), "the preface check ends too");
    }

    #[tokio::test]
    async fn the_open_count_goes_down_when_a_connection_is_dropped() {
        let open = Arc::new(AtomicUsize::new(0));
        let (_client, server) = raw_pair().await;
        let counted = Counted::new(server, open.clone());
        assert_eq!(open.load(Ordering::Relaxed), 1);
        drop(counted);
        assert_eq!(open.load(Ordering::Relaxed), 0);
    }
}
