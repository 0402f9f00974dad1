//! Soak (issue 14): many idle-but-reading SSE subscribers and a steady
//! command load for minutes, to show whether memory stays flat and every
//! event arrives. `--soak-subscribers` subscriptions are held by `bench hold
//! --counting` children; keep-alive clients send `--soak-rate` `POST /input`
//! per second; the fake runtime answers each input with one numbered event,
//! which every subscriber must receive once. The target's RSS is sampled every
//! `--soak-sample`; the first 10 % of the run is its warm-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use memchr::memmem::Finder;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::cpu::{Meter, Usage};
use crate::deliver::stamp_of;
use crate::figure::{Figure, Goal};
use crate::hold::Counts;
use crate::http::HttpConn;
use crate::memory::Holders;
use crate::options::Args;
use crate::procfs::{rss, settled_rss};
use crate::runtime::{self, Ws};
use crate::stats::now_ns;
use crate::target::Target;

/// Keep-alive connections the commands are spread over, each paced at
/// rate / CONNECTIONS and catching up after a slow answer: at 1,000/s, an
/// answer may take up to 16 ms before the offered rate drops.
const CONNECTIONS: u64 = 16;

/// The issue's target: RSS growth after warm-up, %.
const GROWTH_TARGET: f64 = 5.0;

/// After the load: how long deliveries may pause before the rest count as lost.
const DRAIN_QUIET: Duration = Duration::from_secs(5);

/// After the load: the longest wait for deliveries to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// What the command clients did.
#[derive(Default)]
struct Sent {
    /// Answered 202.
    accepted: AtomicU64,
    /// Answered anything else.
    refused: AtomicU64,
    /// The connection failed (it is reopened).
    failed: AtomicU64,
}

/// One sample of the run.
struct Sample {
    secs: f64,
    rss: u64,
    published: u64,
    received: Counts,
}

/// One soak run against `target` (process `pid`).
pub async fn soak(target: &Target, pid: u32, args: &Args) -> anyhow::Result<Vec<Figure>> {
    let (subs, rate, span) = (args.soak_subscribers, args.soak_rate, args.soak_duration);
    let ws = runtime::connect(target, "bench", Duration::from_secs(10)).await?;
    let published = Arc::new(AtomicU64::new(0));
    let echo = tokio::spawn(echo(ws, args.size, published.clone()));
    let mut holders = Holders::new(true);
    let measured = async {
        holders.add(target, subs).await?;
        if holders.held < subs {
            bail!("the target served {} of {subs} subscriptions: {:?}", holders.held, holders.refused_at_limit);
        }
        let before = settled_rss(pid).await?;
        let sent = Arc::new(Sent::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                tokio::spawn(send_inputs(
                    target.clone(),
                    rate as f64 / CONNECTIONS as f64,
                    sent.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let started = Instant::now();
        let (target_cpu, holders_cpu) = (Meter::start(&[pid])?, Meter::start(&holders.pids())?);
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(args.soak_sample);
        loop {
            tick.tick().await;
            let secs = started.elapsed().as_secs_f64();
            let received = holders.counts().await?;
            samples.push(Sample { secs, rss: rss(pid)?, published: published.load(Ordering::Relaxed), received });
            eprintln!(
                "   {secs:>5.0} s  RSS {:>7.1} MB  published {:>8}  delivered {:>11}",
                samples.last().map_or(0.0, |s| s.rss as f64 / 1e6),
                published.load(Ordering::Relaxed),
                samples.last().map_or(0, |s| s.received.unique)
            );
            if started.elapsed() >= span {
                break;
            }
        }
        let _ = stop_tx.send(true);
        for c in clients {
            c.await?;
        }
        let load_secs = started.elapsed().as_secs_f64();
        let cpu = (target_cpu.read()?, holders_cpu.read()?);
        let (drained, waited) = drain(&mut holders, &published, subs as u64).await?;
        let end = Ending {
            before,
            load_secs,
            drained,
            waited,
            sent: &sent,
            published: published.load(Ordering::Relaxed),
            cpu,
        };
        anyhow::Ok(figures(args, &samples, &end))
    }
    .await;
    holders.close().await;
    echo.abort();
    measured
}

/// How the run ended.
struct Ending<'a> {
    /// RSS with the subscribers connected, before the load.
    before: u64,
    load_secs: f64,
    /// The subscribers' counts once deliveries finished (or stopped).
    drained: Counts,
    /// How long that took after the load.
    waited: Duration,
    sent: &'a Sent,
    published: u64,
    /// CPU of the target and of the subscribers' children during the load.
    cpu: (Usage, Usage),
}

/// Waits until every subscriber has every published event, or deliveries
/// pause for [`DRAIN_QUIET`].
async fn drain(holders: &mut Holders, published: &AtomicU64, subs: u64) -> anyhow::Result<(Counts, Duration)> {
    let started = Instant::now();
    let mut last = (holders.counts().await?, Instant::now());
    loop {
        let want = published.load(Ordering::Relaxed) * subs;
        if last.0.unique >= want || started.elapsed() > DRAIN_LIMIT || last.1.elapsed() > DRAIN_QUIET {
            return Ok((last.0, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = holders.counts().await?;
        if now.unique != last.0.unique {
            last = (now, Instant::now());
        }
    }
}

/// The fake runtime: answers each input with one numbered event stamped
/// with the input's own stamp, and counts what it published.
async fn echo(mut ws: Ws, size: usize, published: Arc<AtomicU64>) -> anyhow::Result<()> {
    let stamp = Finder::new(b"\"t\":");
    let mut n = 0u64;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg.context("runtime socket")? {
            let Some(at) = stamp_of(t.as_bytes(), &stamp) else { continue };
            n += 1;
            ws.send(Message::text(runtime::numbered(n, at, size))).await?;
            published.store(n, Ordering::Relaxed);
        }
    }
    bail!("the target closed the runtime socket")
}

/// One keep-alive client sending `POST /input` at `per_sec` until stopped.
async fn send_inputs(target: Target, per_sec: f64, sent: Arc<Sent>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec.max(1e-3)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let path = target.path("/input");
    let mut conn = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        if conn.is_none() {
            conn = HttpConn::connect(&target.addr).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            sent.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let body = format!(
            r#"{{"t":{},"runtime":{{"agent_id":"agent-bench","conversation_id":"conv-bench"}},"payload":{{"kind":"create_message","messages":[{{"role":"user","content":"soak"}}]}}}}"#,
            now_ns()
        );
        match c.request("POST", &path, Some(&target.client_token), Some(body.as_bytes())).await {
            Ok(r) if r.status == 202 => sent.accepted.fetch_add(1, Ordering::Relaxed),
            Ok(_) => sent.refused.fetch_add(1, Ordering::Relaxed),
            Err(_) => {
                conn = None;
                sent.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Least-squares slope of (seconds, bytes), in MB per minute.
fn slope_mb_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { f64::NAN } else { sxy / sxx * 60.0 / 1e6 }
}

fn figures(args: &Args, samples: &[Sample], end: &Ending) -> Vec<Figure> {
    let subs = args.soak_subscribers as u64;
    let name =
        format!("soak, {subs} subs, {}/s inputs, {} s", args.soak_rate, args.soak_duration.as_secs_f64().round());
    let warm_secs = args.soak_duration.as_secs_f64() * 0.1;
    // The warm-up sample: the first at or after 10 % of the run (at least the second sample).
    let warm_at = samples.iter().position(|s| s.secs >= warm_secs).unwrap_or(0).max(1).min(samples.len() - 1);
    let (warm, last) = (&samples[warm_at], &samples[samples.len() - 1]);
    let after: Vec<(f64, f64)> = samples[warm_at..].iter().map(|s| (s.secs, s.rss as f64)).collect();
    let max_after = samples[warm_at..].iter().map(|s| s.rss).max().unwrap_or(0);
    let growth = (last.rss as f64 - warm.rss as f64) / warm.rss as f64 * 100.0;
    let accepted = end.sent.accepted.load(Ordering::Relaxed);
    let (refused, failed) = (end.sent.refused.load(Ordering::Relaxed), end.sent.failed.load(Ordering::Relaxed));
    let expected = end.published * subs;
    let lost = expected.saturating_sub(end.drained.unique);
    let series: Vec<_> = samples
        .iter()
        .map(|s| {
            json!({
                "secs": (s.secs * 10.0).round() / 10.0,
                "rss_mb": s.rss as f64 / 1e6,
                "published": s.published,
                "delivered": s.received.unique,
            })
        })
        .collect();
    let mb = |b: u64| b as f64 / 1e6;
    let mut end_rss = Figure::new(format!("{name}: RSS at the end"), mb(last.rss), "MB").note(format!(
        "sample at {:.0} s; max after warm-up {:.1} MB",
        last.secs,
        mb(max_after)
    ));
    end_rss.series = Some(json!(series));
    vec![
        Figure::new(format!("{name}: RSS before the load"), mb(end.before), "MB")
            .note(format!("{} subscribers connected, settled", subs)),
        Figure::new(format!("{name}: RSS after warm-up"), mb(warm.rss), "MB")
            .note(format!("sample at {:.0} s: warm-up = the first 10 % of the run", warm.secs)),
        end_rss,
        Figure::new(format!("{name}: RSS growth after warm-up"), growth, "%").goal(Goal::AtMost(GROWTH_TARGET)),
        Figure::new(format!("{name}: RSS slope after warm-up"), slope_mb_per_min(&after), "MB/min")
            .note("least squares over the samples after warm-up"),
        Figure::new(format!("{name}: inputs accepted/s"), accepted as f64 / end.load_secs, "/s").note(format!(
            "{accepted} answered 202, {refused} refused, {failed} failed, over {:.0} s",
            end.load_secs
        )),
        Figure::new(format!("{name}: inputs refused or failed"), (refused + failed) as f64, "inputs"),
        Figure::new(format!("{name}: events published"), end.published as f64, "events").note(format!(
            "by the fake runtime, one per input it received; {} inputs accepted but not echoed by the end",
            accepted.saturating_sub(end.published)
        )),
        Figure::new(format!("{name}: deliveries/s"), end.drained.unique as f64 / (end.load_secs + end.waited.as_secs_f64()), "/s")
            .note(format!("{} deliveries; the last {:.1} s after the load", end.drained.unique, end.waited.as_secs_f64())),
        Figure::new(format!("{name}: target CPU"), end.cpu.0.percent, "%")
            .note(format!("of one core during the load; the subscribers' children {:.0} %", end.cpu.1.percent)),
        Figure::new(format!("{name}: events lost"), lost as f64, "events").goal(Goal::AtMost(0.0)).note(format!(
            "of {expected} expected (published × subscribers); {} reported missed in {} lagged notices; {} subscriptions ended{}",
            end.drained.missed,
            end.drained.lags,
            end.drained.ended,
            if end.drained.first_error.is_empty() { String::new() } else { format!(" ({})", end.drained.first_error) }
        )),
        Figure::new(format!("{name}: duplicates"), end.drained.duplicates as f64, "events").goal(Goal::AtMost(0.0)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_in_mb_per_minute() {
        let points: Vec<(f64, f64)> = (0..7).map(|i| (i as f64 * 10.0, 100e6 + i as f64 * 1e6)).collect();
        assert!((slope_mb_per_min(&points) - 6.0).abs() < 1e-9);
        assert!(slope_mb_per_min(&points[..1]).is_nan());
    }
}
