//! Load generator for letta-bridge, driving a running bridge over loopback as
//! real clients do: a fake runtime on the runtime WebSocket, SSE subscribers
//! on raw TCP, HTTP/1.1 keep-alive command clients. The target is given by
//! URL options, so any bridge with the same surface can be measured.
//!
//! Work in progress (issue 5): raw WebSocket baseline, event hop and command
//! hop are measured; fan-out throughput, memory, start-up and instruction
//! counts are still to come.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser, Debug, Clone)]
#[command(about = "Measure a bridge against a raw loopback WebSocket hop")]
struct Args {
    /// The bridge's HTTP base URL (host:port of plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8284")]
    http_url: String,
    /// The runtime WebSocket URL (direct mode: connect with the bearer token).
    #[arg(long, default_value = "ws://127.0.0.1:8284/ws?deviceId=bench")]
    ws_url: String,
    #[arg(long, env = "LETTA_BRIDGE_RUNTIME_TOKEN")]
    runtime_token: String,
    #[arg(long, env = "LETTA_BRIDGE_CLIENT_TOKEN")]
    client_token: String,
    /// Events (or commands) per measurement.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Steady rate for latency runs, per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Repetitions; each figure is their median.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Event payload padding in bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
}

fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// p50, p99, p999 in microseconds.
fn percentiles(mut v: Vec<u64>) -> [f64; 3] {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64 / 1000.0;
    [at(0.50), at(0.99), at(0.999)]
}

fn median3(runs: Vec<[f64; 3]>) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (i, o) in out.iter_mut().enumerate() {
        let mut col: Vec<f64> = runs.iter().map(|r| r[i]).collect();
        col.sort_by(|a, b| a.total_cmp(b));
        *o = col[col.len() / 2];
    }
    out
}

/// The `"t":<ns>` stamp in a frame.
fn stamp(text: &str) -> Option<u64> {
    let rest = &text[text.find("\"t\":")? + 4..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

async fn paced(count: usize, rate: u64, mut each: impl AsyncFnMut(usize)) {
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut tick = tokio::time::interval(period);
    for i in 0..count {
        tick.tick().await;
        each(i).await;
    }
}

/// A raw tokio-tungstenite client → server hop on loopback.
async fn baseline(args: &Args) -> anyhow::Result<Vec<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let count = args.count;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let mut ws = tokio_tungstenite::accept_async(tcp).await?;
        let mut lat = Vec::with_capacity(count);
        while lat.len() < count {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => lat.extend(stamp(t.as_str()).map(|t| now_ns() - t)),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        anyhow::Ok(lat)
    });
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}"), None, true).await?;
    let pad = "x".repeat(args.size);
    paced(count, args.rate, async |_| {
        let _ = ws.send(Message::text(format!(r#"{{"type":"bench","t":{},"pad":"{pad}"}}"#, now_ns()))).await;
    })
    .await;
    server.await?
}

type Runtime = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect_runtime(args: &Args) -> anyhow::Result<Runtime> {
    let mut req = args.ws_url.as_str().into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {}", args.runtime_token).parse()?);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(req, None, true).await.context("runtime WebSocket")?;
    ws.send(Message::text(r#"{"type":"ping"}"#)).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await? {
            Some(Ok(Message::Text(t))) if t.as_str().contains("pong") => return Ok(ws),
            Some(Ok(_)) => continue,
            _ => bail!("no pong from the bridge"),
        }
    }
}

fn host(args: &Args) -> String {
    args.http_url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// One SSE subscriber on raw TCP: returns once the stream is open.
async fn subscribe(args: &Args, expect: usize) -> anyhow::Result<tokio::task::JoinHandle<Vec<u64>>> {
    let host = host(args);
    let mut tcp = TcpStream::connect(&host).await?;
    tcp.set_nodelay(true)?;
    let req = format!(
        "GET /events?types=bench HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\r\n",
        args.client_token
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut lines = BufReader::new(tcp).lines();
    while let Some(line) = lines.next_line().await? {
        if line.starts_with("retry:") {
            break;
        }
    }
    Ok(tokio::spawn(async move {
        let mut lat = Vec::with_capacity(expect);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while lat.len() < expect {
            let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                lat.extend(stamp(data).map(|t| now_ns() - t));
            }
        }
        lat
    }))
}

/// Fake runtime event → N SSE subscribers, at a steady rate.
async fn event_hop(args: &Args, subscribers: usize) -> anyhow::Result<Vec<u64>> {
    let mut runtime = connect_runtime(args).await?;
    let mut subs = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        subs.push(subscribe(args, args.count).await?);
    }
    let pad = "x".repeat(args.size);
    paced(args.count, args.rate, async |_| {
        let _ = runtime.send(Message::text(format!(r#"{{"type":"bench","t":{},"pad":"{pad}"}}"#, now_ns()))).await;
    })
    .await;
    let mut all = Vec::new();
    for s in subs {
        let lat = s.await?;
        if lat.len() < args.count {
            bail!("a subscriber got {} of {} events", lat.len(), args.count);
        }
        all.extend(lat);
    }
    Ok(all)
}

/// `POST /input` on keep-alive connections → the frame at the runtime.
async fn command_hop(args: &Args, concurrency: usize) -> anyhow::Result<Vec<u64>> {
    let runtime = connect_runtime(args).await?;
    let count = args.count;
    let receiver = tokio::spawn(async move {
        let (_, mut read) = runtime.split();
        let mut lat = Vec::with_capacity(count);
        while lat.len() < count {
            match tokio::time::timeout(Duration::from_secs(30), read.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => lat.extend(stamp(t.as_str()).map(|t| now_ns() - t)),
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        lat
    });
    let per = count / concurrency;
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (host, token) = (host(args), args.client_token.clone());
        clients.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(&host).await?;
            tcp.set_nodelay(true)?;
            let mut buf = vec![0u8; 4096];
            for _ in 0..per {
                let body = format!(
                    r#"{{"t":{},"payload":{{"kind":"create_message","messages":[{{"role":"user","content":"bench"}}]}}}}"#,
                    now_ns()
                );
                let req = format!(
                    "POST /input HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                tcp.write_all(req.as_bytes()).await?;
                let n = tcp.read(&mut buf).await?;
                if n == 0 || !buf.starts_with(b"HTTP/1.1 202") {
                    bail!("unexpected answer: {}", String::from_utf8_lossy(&buf[..n]));
                }
            }
            anyhow::Ok(())
        }));
    }
    for c in clients {
        c.await??;
    }
    Ok(receiver.await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    now_ns();
    println!(
        "machine: {} cores; {} events per run, {} reps, {} B padding, {}/s",
        std::thread::available_parallelism()?,
        args.count,
        args.reps,
        args.size,
        args.rate
    );
    let mut runs = Vec::new();
    for _ in 0..args.reps {
        runs.push(percentiles(baseline(&args).await?));
    }
    let base = median3(runs);
    let row = |name: &str, p: [f64; 3]| {
        println!(
            "{name:<34} p50 {:>8.1} µs  p99 {:>8.1} µs  p999 {:>8.1} µs  p99/baseline {:>5.2}",
            p[0],
            p[1],
            p[2],
            p[1] / base[1]
        );
    };
    row("raw WebSocket hop (baseline)", base);
    for subs in [1, 100] {
        let mut runs = Vec::new();
        for _ in 0..args.reps {
            runs.push(percentiles(event_hop(&args, subs).await?));
        }
        row(&format!("event hop, {subs} subscribers"), median3(runs));
    }
    for c in [1, 8] {
        let mut runs = Vec::new();
        for _ in 0..args.reps {
            runs.push(percentiles(command_hop(&args, c).await?));
        }
        row(&format!("command hop, concurrency {c}"), median3(runs));
    }
    Ok(())
}
