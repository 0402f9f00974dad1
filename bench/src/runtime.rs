//! The fake runtime: connects to the bridge's runtime WebSocket (directly or
//! after registering), builds stamped frames of an exact size, and publishes
//! them at a steady rate or as fast as the socket takes them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::deliver::Shared;
use crate::http::HttpConn;
use crate::stats::{STAMP_DIGITS, now_ns};
use crate::target::Target;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects the fake runtime and waits for the bridge's `pong` (so the socket
/// is being served before anything is measured).
pub async fn connect(target: &Target, device: &str, timeout: Duration) -> anyhow::Result<Ws> {
    let url = if target.register { register(target, device).await? } else { target.ws_url.clone() };
    let mut req = url.as_str().into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {}", target.runtime_token).parse()?);
    let (mut ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async_with_config(req, None, true))
        .await
        .context("runtime WebSocket: timed out")?
        .with_context(|| format!("runtime WebSocket {url}"))?;
    ws.send(Message::text(r#"{"type":"ping"}"#)).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.context("no pong from the bridge")? {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"pong\"") => return Ok(ws),
            Some(Ok(Message::Close(c))) => bail!("the bridge closed the runtime socket: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("runtime WebSocket"),
            None => bail!("the bridge closed the runtime socket"),
        }
    }
}

/// Registration mode: `POST /v1/environments/register`, then the answered
/// `wsUrl` with `deviceId` and `connectionName`.
async fn register(target: &Target, device: &str) -> anyhow::Result<String> {
    let mut conn = HttpConn::connect(&target.addr).await?;
    let body = serde_json::json!({ "deviceId": device, "connectionName": "bench" }).to_string();
    let path = target.path("/v1/environments/register");
    let r = conn.request("POST", &path, Some(&target.runtime_token), Some(body.as_bytes())).await?;
    if r.status != 200 {
        bail!("register answered {}: {}", r.status, r.text());
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).context("register answer is not JSON")?;
    let ws_url = v["wsUrl"].as_str().context("register answer without wsUrl")?;
    let sep = if ws_url.contains('?') { '&' } else { '?' };
    Ok(format!("{ws_url}{sep}deviceId={device}&connectionName=bench"))
}

/// Builds `{"type":"bench","t":<stamp>,"pad":"xx…"}` frames of an exact size
/// from a template, overwriting only the stamp.
pub struct Stamper {
    template: Vec<u8>,
    at: usize,
}

impl Stamper {
    pub fn new(size: usize) -> Self {
        let head = br#"{"type":"bench","t":"#;
        let tail_len = br#","pad":""}"#.len();
        let pad = size.saturating_sub(head.len() + STAMP_DIGITS + tail_len);
        let mut template = head.to_vec();
        let at = template.len();
        template.extend(std::iter::repeat_n(b'0', STAMP_DIGITS));
        template.extend_from_slice(br#","pad":""#);
        template.extend(std::iter::repeat_n(b'x', pad));
        template.extend_from_slice(br#""}"#);
        Self { template, at }
    }

    /// A frame stamped now.
    pub fn frame(&mut self) -> String {
        let mut n = now_ns();
        for b in self.template[self.at..self.at + STAMP_DIGITS].iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
        String::from_utf8(self.template.clone()).expect("ASCII template")
    }
}

/// `{"type":"bench","n":<n>,"t":<t>,"pad":"xx…"}`, padded to `size` bytes
/// when shorter: the numbered frames of the soak and churn runs, so that each
/// subscriber can tell a lost or repeated event from the sequence `n`.
pub fn numbered(n: u64, t: u64, size: usize) -> String {
    let head = format!(r#"{{"type":"bench","n":{n},"t":{t},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2);
    let mut frame = String::with_capacity(head.len() + pad + 2);
    frame.push_str(&head);
    frame.extend(std::iter::repeat_n('x', pad));
    frame.push_str(r#""}"#);
    frame
}

/// How a publisher sends.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// `count` frames at `per_sec`.
    Steady { count: usize, per_sec: u64 },
    /// As fast as the socket takes them, for this long.
    Saturate(Duration),
}

/// Frames fed per flush at saturation.
const BURST: usize = 16;

/// Publishes stamped frames; returns how many were sent and for how long.
pub async fn publish<S>(sink: &mut S, size: usize, pace: Pace) -> anyhow::Result<(u64, Duration)>
where
    S: Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let mut stamper = Stamper::new(size);
    let started = Instant::now();
    let mut sent = 0u64;
    match pace {
        Pace::Steady { count, per_sec } => {
            let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / per_sec.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for _ in 0..count {
                tick.tick().await;
                sink.send(Message::text(stamper.frame())).await?;
                sent += 1;
            }
        }
        Pace::Saturate(span) => {
            while started.elapsed() < span {
                for _ in 0..BURST {
                    sink.feed(Message::text(stamper.frame())).await?;
                }
                sink.flush().await?;
                sent += BURST as u64;
            }
        }
    }
    Ok((sent, started.elapsed()))
}

/// Publishes stamped frames as fast as the socket takes them for `span`, but
/// with at most `window` events in flight over all publishers of `shared`:
/// published and not yet seen by the average one of `subscribers`. The
/// bridge does not push back on a runtime socket, and in cluster mode a
/// runtime that outruns Redis fills the instance's append queue (10,000
/// events) until it fences itself; a window below that keeps the run
/// measuring throughput, in cluster and embedded mode alike.
pub async fn publish_windowed<S>(
    sink: &mut S,
    size: usize,
    span: Duration,
    window: u64,
    shared: &Shared,
    subscribers: usize,
) -> anyhow::Result<(u64, Duration)>
where
    S: Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let mut stamper = Stamper::new(size);
    let started = Instant::now();
    let mut sent = 0u64;
    let subscribers = subscribers.max(1) as u64;
    while started.elapsed() < span {
        let progress = shared.progress.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        let seen = shared.seen.load(Ordering::Relaxed) / subscribers;
        let in_flight = shared.published.load(Ordering::Relaxed).saturating_sub(seen);
        if in_flight + BURST as u64 > window {
            let _ = tokio::time::timeout(Duration::from_millis(10), progress).await;
            continue;
        }
        for _ in 0..BURST {
            sink.feed(Message::text(stamper.frame())).await?;
        }
        sink.flush().await?;
        shared.published.fetch_add(BURST as u64, Ordering::Relaxed);
        sent += BURST as u64;
    }
    Ok((sent, started.elapsed()))
}

/// Reads and drops what the bridge sends the runtime (answering pings), until
/// the socket closes.
pub async fn drain<S>(mut stream: S)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(_)) = stream.next().await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_asked_size_and_parse() {
        let mut s = Stamper::new(200);
        let f = s.frame();
        assert_eq!(f.len(), 200);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["type"], "bench");
        assert!(v["t"].as_u64().unwrap() > 0);
    }

    #[test]
    fn numbered_frames_have_the_asked_size_and_parse() {
        let f = numbered(42, now_ns(), 200);
        assert_eq!(f.len(), 200);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!((v["type"].as_str(), v["n"].as_u64()), (Some("bench"), Some(42)));
    }
}
