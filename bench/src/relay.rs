//! The raw baselines: one tokio-tungstenite client → server hop, and a
//! minimal tokio-tungstenite fan-out relay (publisher → server → a broadcast
//! channel → one task per receiver), the physical limit a bridge is compared
//! to. The relay runs in its own process (`bench relay`), as the bridge does.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use memchr::memmem::Finder;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use crate::deliver::{self, Outcome, Shared, SubStats, record_latency, stamp_of};
use crate::figure::Figure;
use crate::procfs;
use crate::runtime::{Pace, publish};
use crate::stats::{Hist, now_ns};

/// Frames the relay's broadcast channel holds (the bridge's replay ring
/// default): receivers further behind are told how many they missed.
const RELAY_CAPACITY: usize = 10_000;

/// One raw hop at a steady rate: latencies measured at the server.
pub async fn hop(count: usize, per_sec: u64, size: usize) -> anyhow::Result<Hist> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let mut ws = tokio_tungstenite::accept_async(tcp).await?;
        let finder = Finder::new(b"\"t\":");
        let mut stats = SubStats::new(true);
        let mut got = 0;
        while got < count {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    got += 1;
                    record_latency(&mut stats, stamp_of(t.as_bytes(), &finder), now_ns());
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        anyhow::Ok(stats.hist.unwrap_or_default())
    });
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}"), None, true).await?;
    publish(&mut ws, size, Pace::Steady { count, per_sec }).await?;
    let hist = server.await??;
    if (hist.len() as usize) < count {
        bail!("the raw hop server got {} of {count} frames", hist.len());
    }
    Ok(hist)
}

/// Name of the relay's RSS-per-receiver figure (the memory scenario's
/// per-subscriber figure is divided by it).
pub fn per_receiver_name(n: usize) -> String {
    format!("raw relay per idle receiver, {n} receivers")
}

/// A running relay process.
pub struct Relay {
    child: tokio::process::Child,
    pub addr: String,
}

impl Relay {
    /// Starts `bench relay` and reads the port it listens on.
    pub async fn spawn() -> anyhow::Result<Relay> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("relay")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("relay stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await??.unwrap_or_default();
        let port = line.strip_prefix("port ").context("relay did not say its port")?;
        Ok(Relay { addr: format!("127.0.0.1:{port}"), child })
    }

    /// The relay process's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// RSS per idle receiver: `n` receivers connected and subscribed, the
    /// relay's RSS before and after (the baseline for the bridge's RSS per
    /// idle SSE subscriber).
    pub async fn memory(&self, n: usize) -> anyhow::Result<Vec<Figure>> {
        let pid = self.pid().context("relay exited")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = procfs::settled_rss(pid).await?;
        let held: Vec<ClientWs> = futures_util::stream::iter(0..n)
            .map(|_| receiver(&self.addr))
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let with = procfs::settled_rss(pid).await?;
        drop(held);
        Ok(vec![
            Figure::new("raw relay idle RSS", idle as f64 / 1e6, "MB"),
            Figure::new(per_receiver_name(n), with.saturating_sub(idle) as f64 / n as f64 / 1e3, "KB")
                .note("tokio-tungstenite server connection + broadcast receiver: the floor for a minimal Rust server"),
        ])
    }

    /// Runs `receivers` receivers and one publisher through the relay.
    pub async fn run(&self, receivers: usize, size: usize, pace: Pace, latency: bool) -> anyhow::Result<Outcome> {
        let shared = Shared::new();
        let mut tasks = Vec::with_capacity(receivers);
        let mut opened = futures_util::stream::iter(0..receivers).map(|_| receiver(&self.addr)).buffer_unordered(64);
        while let Some(ws) = opened.next().await {
            let ws = ws?;
            let shared = shared.clone();
            tasks.push(tokio::spawn(receive(ws, shared, latency)));
        }
        let (mut publisher, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{}/pub", self.addr), None, true).await?;
        let start = now_ns();
        let outcome =
            deliver::run(shared, tasks, start, publish(&mut publisher, size, pace), Duration::from_secs(60)).await;
        let _ = publisher.close(None).await;
        outcome
    }

    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

type ClientWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A receiver, connected and subscribed (the relay says `ready`).
async fn receiver(addr: &str) -> anyhow::Result<ClientWs> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/sub"), None, true).await?;
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
        Some(Ok(Message::Text(t))) if t.as_str() == "ready" => Ok(ws),
        other => bail!("relay receiver: expected ready, got {other:?}"),
    }
}

async fn receive(mut ws: ClientWs, shared: Arc<Shared>, latency: bool) -> SubStats {
    let mut stats = SubStats::new(latency);
    let mut stop = shared.stopped();
    let stamp = Finder::new(b"\"t\":");
    let missed = Finder::new(b"\"missed\":");
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = ws.next() => m,
        };
        let now = now_ns();
        match msg {
            Some(Ok(Message::Text(t))) => {
                let bytes = t.as_bytes();
                stats.bytes += bytes.len() as u64;
                if bytes.starts_with(br#"{"type":"lagged""#) {
                    stats.lags += 1;
                    let n = stamp_of(bytes, &missed).unwrap_or(0);
                    stats.missed += n;
                    shared.seen.fetch_add(n, Ordering::Relaxed);
                } else {
                    stats.events += 1;
                    stats.last_ns = now;
                    record_latency(&mut stats, stamp_of(bytes, &stamp), now);
                    shared.seen.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                stats.error = Some(format!("{e}"));
                break;
            }
            None => break,
        }
    }
    stats
}

/// `bench relay`: the relay server process.
pub fn serve() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("port {}", listener.local_addr()?.port());
        let (tx, _) = broadcast::channel::<Message>(RELAY_CAPACITY);
        let accept = async {
            loop {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                tokio::spawn(connection(tcp, tx.clone()));
            }
            #[allow(unreachable_code)]
            anyhow::Ok(())
        };
        // Exit when the parent closes stdin.
        let parent_gone = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        });
        tokio::select! {
            r = accept => r,
            _ = parent_gone => Ok(()),
        }
    })
}

async fn connection(tcp: TcpStream, tx: broadcast::Sender<Message>) -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let mut path = String::new();
    // The callback's error type is tungstenite's (a whole HTTP response); it never fails here.
    #[allow(clippy::result_large_err)]
    let record_path = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, record_path).await?;
    if path == "/pub" {
        while let Some(msg) = ws.next().await {
            let msg = msg?;
            if msg.is_text() {
                // No receivers is not an error for a relay.
                let _ = tx.send(msg);
            }
        }
        return Ok(());
    }
    let mut rx = tx.subscribe();
    ws.send(Message::text("ready")).await?;
    loop {
        // Batch: everything already queued goes out with one flush.
        let first = rx.recv().await;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Ok(msg) => ws.feed(msg).await?,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    ws.feed(Message::text(format!(r#"{{"type":"lagged","missed":{n}}}"#))).await?
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
            next = match rx.try_recv() {
                Ok(m) => Some(Ok(m)),
                Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(broadcast::error::RecvError::Lagged(n))),
                Err(_) => None,
            };
        }
        ws.flush().await?;
    }
}
