//! Command scenarios over keep-alive raw HTTP/1.1: `POST /input` → the frame
//! at the fake runtime (latency stamped in the body), and `POST
//! /sync?wait=true` round trips (the fake runtime answers each `sync` with a
//! `sync_response` carrying its `request_id`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use memchr::memmem::Finder;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::deliver::stamp_of;
use crate::figure::{Figure, Goal, latency};
use crate::http::HttpConn;
use crate::options::Args;
use crate::runtime::{self, Ws};
use crate::stats::{Hist, now_ns};
use crate::target::Target;

/// `POST /input` from `concurrency` keep-alive connections, `--count` in all.
pub async fn input(target: &Target, args: &Args, concurrency: usize) -> anyhow::Result<Vec<Figure>> {
    let ws = runtime::connect(target, "bench", Duration::from_secs(10)).await?;
    let (hist, per_sec) = inputs(ws, target, args.count, concurrency).await?;
    let name = format!("input, concurrency {concurrency}");
    let mut figures = latency(&name, hist.percentiles(), Some("raw hop"), None);
    if concurrency == 1 {
        figures[1].goal = Some(Goal::HopTimes(2.0));
    }
    figures.push(Figure::new(format!("{name}: requests/s"), per_sec, "/s"));
    Ok(figures)
}

/// `count` `POST /input` (rounded up to a multiple of `concurrency`) sent
/// to `http` from `concurrency` keep-alive connections, received by the
/// connected runtime `ws`: the latencies to the runtime, and the 202s per second.
pub async fn inputs(ws: Ws, http: &Target, count: usize, concurrency: usize) -> anyhow::Result<(Hist, f64)> {
    let per = count.div_ceil(concurrency).max(1);
    let total = per * concurrency;
    let receiver = tokio::spawn(receive_inputs(ws, total));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let target = http.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = HttpConn::connect(&target.addr).await?;
            let path = target.path("/input");
            for _ in 0..per {
                let body = format!(
                    r#"{{"t":{},"runtime":{{"agent_id":"agent-bench","conversation_id":"conv-bench"}},"payload":{{"kind":"create_message","messages":[{{"role":"user","content":"bench"}}]}}}}"#,
                    now_ns()
                );
                let r = conn.request("POST", &path, Some(&target.client_token), Some(body.as_bytes())).await?;
                if r.status != 202 {
                    bail!("POST /input answered {}: {}", r.status, r.text());
                }
            }
            anyhow::Ok(())
        }));
    }
    for c in clients {
        c.await??;
    }
    let sent_in = started.elapsed();
    let hist = receiver.await??;
    Ok((hist, total as f64 / sent_in.as_secs_f64()))
}

/// Latencies of the stamped frames reaching the runtime.
async fn receive_inputs(mut ws: Ws, expect: usize) -> anyhow::Result<Hist> {
    let stamp = Finder::new(b"\"t\":");
    let mut hist = Hist::default();
    while (hist.len() as usize) < expect {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .with_context(|| format!("the runtime got {} of {expect} inputs, then nothing for 30 s", hist.len()))?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let now = now_ns();
                if let Some(t) = stamp_of(t.as_bytes(), &stamp) {
                    hist.record(now.saturating_sub(t));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("runtime socket"),
            None => bail!("the bridge closed the runtime socket"),
        }
    }
    Ok(hist)
}

/// A `sync` body with the scope the runtime needs (bridges before 9f13d0a
/// accepted `{}` too, and accept this).
const SYNC_BODY: &[u8] = br#"{"runtime":{"agent_id":"agent-bench","conversation_id":"conv-bench"}}"#;

/// `POST /sync?wait=true` from `concurrency` connections for `--saturation-secs`.
pub async fn sync(target: &Target, args: &Args, concurrency: usize) -> anyhow::Result<Vec<Figure>> {
    let ws = runtime::connect(target, "bench", Duration::from_secs(10)).await?;
    let span = Duration::from_secs_f64(args.saturation_secs);
    let s = syncs(ws, target, span, concurrency).await?;
    let name = format!("sync?wait=true, concurrency {concurrency}");
    let mut figures = vec![
        Figure::new(format!("{name}: round trips/s"), s.per_sec, "/s")
            .note(format!("the runtime answered {} syncs", s.answered)),
    ];
    figures.extend(latency(&name, s.hist.percentiles(), Some("raw hop"), None));
    Ok(figures)
}

/// What a run of `sync?wait=true` round trips measured.
pub struct Syncs {
    pub hist: Hist,
    pub per_sec: f64,
    /// Syncs the fake runtime answered.
    pub answered: u64,
}

/// `POST /sync?wait=true` sent to `http` from `concurrency` connections for
/// `span`, answered by the connected runtime `ws`.
pub async fn syncs(ws: Ws, http: &Target, span: Duration, concurrency: usize) -> anyhow::Result<Syncs> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let runtime = tokio::spawn(answer_syncs(ws, stop_rx));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let target = http.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = HttpConn::connect(&target.addr).await?;
            let path = target.path("/sync?wait=true");
            let mut hist = Hist::default();
            while started.elapsed() < span {
                let t = now_ns();
                let r = conn.request("POST", &path, Some(&target.client_token), Some(SYNC_BODY)).await?;
                if r.status != 200 {
                    bail!("POST /sync?wait=true answered {}: {}", r.status, r.text());
                }
                hist.record(now_ns() - t);
            }
            anyhow::Ok(hist)
        }));
    }
    let mut hist = Hist::default();
    let mut failure = None;
    for c in clients {
        match c.await? {
            Ok(h) => hist.merge(&h),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    let answered = runtime.await??;
    if let Some(e) = failure {
        return Err(e);
    }
    let per_sec = hist.len() as f64 / elapsed.as_secs_f64();
    Ok(Syncs { hist, per_sec, answered })
}

/// The fake runtime's side of `sync`: answers each with `sync_response`.
async fn answer_syncs(mut ws: Ws, mut stop: watch::Receiver<bool>) -> anyhow::Result<u64> {
    let mut answered = 0;
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => break,
            m = ws.next() => m,
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else { continue };
                if v["type"] == "sync" {
                    let reply = serde_json::json!({
                        "type": "sync_response",
                        "request_id": v["request_id"],
                        "success": true,
                    });
                    ws.send(Message::text(reply.to_string())).await?;
                    answered += 1;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("runtime socket"),
            None => bail!("the bridge closed the runtime socket"),
        }
    }
    let _ = ws.close(None).await;
    Ok(answered)
}
