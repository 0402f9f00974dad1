//! An SSE subscriber on raw TCP: `GET /events` over HTTP/1.1, the chunked
//! body undone incrementally, events split at blank lines with memchr, and
//! each counted (with its latency when asked) or, for `lagged`, its missed
//! events added up. Large reads keep the client side cheap.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use memchr::memmem::{self, Finder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::chunked::{BodyLength, Dechunker, parse_head};
use crate::deliver::{Shared, SubStats, record_latency, stamp_of};
use crate::http::connect_tcp;
use crate::stats::now_ns;
use crate::target::Target;

/// Bytes read per `read` call while measuring.
const READ_BUF: usize = 64 * 1024;

/// An open event stream whose first bytes (`retry:`) have arrived.
pub struct SseStream {
    tcp: TcpStream,
    dechunk: Option<Dechunker>,
    /// Decoded body bytes not yet split into events.
    body: Vec<u8>,
}

/// Opens `GET /events?types=<types>` and waits for the stream's first event
/// block, so that the subscription is live when this returns.
pub async fn open(target: &Target, source: Option<IpAddr>, types: &str) -> anyhow::Result<SseStream> {
    open_from(target, source, types, None).await
}

/// [`open`], resuming after `last_event_id` (the `Last-Event-ID` header).
pub async fn open_from(
    target: &Target,
    source: Option<IpAddr>,
    types: &str,
    last_event_id: Option<&str>,
) -> anyhow::Result<SseStream> {
    let mut tcp = connect_tcp(&target.addr, source).await?;
    let resume = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n{resume}\r\n",
        target.path(&format!("/events?types={types}")),
        target.addr,
        target.client_token
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut raw = Vec::with_capacity(1024);
    let head = loop {
        if let Some(head) = parse_head(&raw)? {
            break head;
        }
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before the response head");
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    if head.status != 200 {
        bail!("GET /events answered {}: {}", head.status, String::from_utf8_lossy(&raw[head.len..]));
    }
    let mut stream = SseStream {
        tcp,
        dechunk: (head.body == BodyLength::Chunked).then(Dechunker::default),
        body: Vec::with_capacity(1024),
    };
    stream.decode(&raw[head.len..])?;
    while memmem::find(&stream.body, b"\n\n").is_none() {
        let mut chunk = [0u8; 1024];
        let n = stream.tcp.read(&mut chunk).await?;
        if n == 0 {
            bail!("the event stream closed before its first bytes");
        }
        stream.decode(&chunk[..n])?;
    }
    if !stream.body.starts_with(b"retry:") && !stream.body.starts_with(b":") {
        bail!("unexpected start of the event stream: {:?}", String::from_utf8_lossy(&stream.body));
    }
    Ok(stream)
}

impl SseStream {
    fn decode(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match &mut self.dechunk {
            Some(d) => {
                d.feed(bytes, &mut self.body)?;
                if d.is_done() {
                    bail!("the event stream ended");
                }
            }
            None => self.body.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// The bare socket, for holding an idle subscription at little cost.
    pub fn into_idle(self) -> TcpStream {
        self.tcp
    }

    /// Reads until an event named `name` arrives; returns its block (the
    /// `id:`, `event:` and `data:` lines). Other events are skipped.
    pub async fn next_named(&mut self, name: &str, timeout: std::time::Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let wanted = format!("event: {name}\n");
        loop {
            while let Some(end) = memmem::find(&self.body, b"\n\n") {
                let block = String::from_utf8_lossy(&self.body[..end]).into_owned();
                self.body.drain(..end + 2);
                if block.starts_with(&wanted) || block.contains(&format!("\n{wanted}")) {
                    return Ok(block);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .with_context(|| format!("no `{name}` event within {timeout:?}"))??;
            if n == 0 {
                bail!("the event stream closed before a `{name}` event");
            }
            self.decode(&chunk[..n])?;
        }
    }

    /// Hands each complete event block (its lines, without the blank line)
    /// to `each`: those already read (e.g. a replay that came with the first
    /// bytes `open` read), or else those of one more read from the socket
    /// into `raw`; returns the bytes read. An error when the stream ends or fails.
    pub async fn read_blocks(&mut self, raw: &mut [u8], mut each: impl FnMut(&[u8])) -> anyhow::Result<usize> {
        let mut n = 0;
        if memmem::find(&self.body, b"\n\n").is_none() {
            n = self.tcp.read(raw).await?;
            if n == 0 {
                bail!("the event stream closed");
            }
            self.decode(&raw[..n])?;
        }
        let mut at = 0;
        while let Some(end) = memmem::find(&self.body[at..], b"\n\n") {
            each(&self.body[at..at + end]);
            at += end + 2;
        }
        self.body.drain(..at);
        Ok(n)
    }

    /// Counts events until the run stops.
    pub async fn run(mut self, shared: Arc<Shared>, latency: bool) -> SubStats {
        let mut stats = SubStats::new(latency);
        let mut stop = shared.stopped();
        let mut raw = vec![0u8; READ_BUF];
        let scan = Scan::new();
        // The first block (`retry:`) was read by `open`; it is skipped below.
        loop {
            let n = tokio::select! {
                biased;
                _ = stop.changed() => break,
                r = self.tcp.read(&mut raw) => match r {
                    Ok(0) => { stats.error = Some("the event stream closed".into()); break }
                    Ok(n) => n,
                    Err(e) => { stats.error = Some(format!("read: {e}")); break }
                },
            };
            let now = now_ns();
            stats.bytes += n as u64;
            if let Err(e) = self.decode(&raw[..n]) {
                stats.error = Some(format!("{e:#}"));
                break;
            }
            let before = stats.events + stats.missed;
            let used = scan.blocks(&self.body, now, &mut stats);
            self.body.drain(..used);
            let added = stats.events + stats.missed - before;
            if added > 0 {
                shared.saw(added);
            }
        }
        stats
    }
}

/// The value of the `field: value` line of an event block (`id`, `event`).
pub fn line<'a>(block: &'a [u8], field: &str) -> Option<&'a [u8]> {
    let mut rest = block;
    loop {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let l = &rest[..end];
        if let Some(v) = l.strip_prefix(field.as_bytes()).and_then(|v| v.strip_prefix(b": ")) {
            return Some(v);
        }
        if end == rest.len() {
            return None;
        }
        rest = &rest[end + 1..];
    }
}

/// Splits decoded SSE bytes into event blocks and tallies them.
struct Scan {
    blank: Finder<'static>,
    event: Finder<'static>,
    stamp: Finder<'static>,
    missed: Finder<'static>,
}

impl Scan {
    fn new() -> Self {
        Self {
            blank: Finder::new(b"\n\n"),
            event: Finder::new(b"event: "),
            stamp: Finder::new(b"\"t\":"),
            missed: Finder::new(b"\"missed\":"),
        }
    }

    /// Tallies the complete blocks in `body`; returns the bytes consumed.
    fn blocks(&self, body: &[u8], now: u64, stats: &mut SubStats) -> usize {
        let mut at = 0;
        while let Some(end) = self.blank.find(&body[at..]) {
            let block = &body[at..at + end];
            at += end + 2;
            let Some(e) = self.event.find(block) else { continue };
            let name = &block[e + 7..];
            let name = &name[..memchr::memchr(b'\n', name).unwrap_or(name.len())];
            match name {
                b"bench" => {
                    stats.events += 1;
                    stats.last_ns = now;
                    if stats.hist.is_some() {
                        record_latency(stats, stamp_of(block, &self.stamp), now);
                    }
                }
                b"lagged" => {
                    stats.lags += 1;
                    stats.missed += stamp_of(block, &self.missed).unwrap_or(0);
                }
                _ => {}
            }
        }
        at
    }
}

/// Opens `count` subscriptions, at most `parallel` handshakes at a time.
pub async fn open_many(
    target: &Target,
    count: usize,
    parallel: usize,
    source: impl Fn(usize) -> Option<IpAddr>,
) -> anyhow::Result<Vec<SseStream>> {
    use futures_util::StreamExt;
    let opened: Vec<anyhow::Result<SseStream>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let src = source(i);
            async move { open(target, src, "bench").await.with_context(|| format!("subscriber {i}")) }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    opened.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_events_latencies_and_lagged_notices() {
        let t = now_ns();
        let body = format!(
            "retry: 1000\n: connected\n\nid: e-1\nevent: bench\ndata: {{\"runtime_id\":\"b\",\"type\":\"bench\",\"t\":{t},\"pad\":\"\"}}\n\n\
             id: e-9\nevent: lagged\ndata: {{\"type\":\"lagged\",\"missed\":7,\"resume_from\":\"e-9\"}}\n\nid: e-10\nevent: be"
        );
        let mut stats = SubStats::new(true);
        let used = Scan::new().blocks(body.as_bytes(), t + 5000, &mut stats);
        assert_eq!((stats.events, stats.missed, stats.lags), (1, 7, 1));
        assert_eq!(&body[used..], "id: e-10\nevent: be");
        assert!((stats.hist.unwrap().quantile_us(0.5) - 5.0).abs() < 0.1);
    }

    #[test]
    fn finds_the_lines_of_a_block() {
        let block = b"id: e-3\nevent: bench\ndata: {\"n\":3}";
        assert_eq!(line(block, "id"), Some(&b"e-3"[..]));
        assert_eq!(line(block, "event"), Some(&b"bench"[..]));
        assert_eq!(line(block, "retry"), None);
    }
}
