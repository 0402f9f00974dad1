//! Bridge event scenarios: the event hop (fake runtime frame → SSE
//! subscribers) at a steady rate and at saturation, and fan-out throughput to
//! many subscribers, each next to the raw relay at the same receiver count.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};

use crate::deliver::{self, Outcome, Shared};
use crate::figure::{Figure, Goal, latency};
use crate::options::Args;
use crate::relay::Relay;
use crate::runtime::{self, Pace, publish};
use crate::sse;
use crate::stats::now_ns;
use crate::target::Target;

/// Handshakes in flight while opening subscribers.
pub const OPEN_PARALLEL: usize = 64;

/// Longest a delivery run may take after publishing.
pub const HARD_LIMIT: Duration = Duration::from_secs(60);

/// Fake runtime → bridge → `subscribers` SSE streams.
pub async fn through_bridge(
    target: &Target,
    subscribers: usize,
    size: usize,
    pace: Pace,
    latency: bool,
) -> anyhow::Result<Outcome> {
    across(target, target, subscribers, size, pace, latency).await
}

/// Fake runtime on `runtime_at` → `subscribers` SSE streams on `subscribe_at`
/// (the same bridge, or two instances of a cluster).
pub async fn across(
    runtime_at: &Target,
    subscribe_at: &Target,
    subscribers: usize,
    size: usize,
    pace: Pace,
    latency: bool,
) -> anyhow::Result<Outcome> {
    let ws = runtime::connect(runtime_at, "bench", Duration::from_secs(10)).await?;
    let (mut sink, stream) = ws.split();
    let drainer = tokio::spawn(runtime::drain(stream));
    let streams = sse::open_many(subscribe_at, subscribers, OPEN_PARALLEL, |_| None).await?;
    let shared = Shared::new();
    let tasks = streams.into_iter().map(|s| tokio::spawn(s.run(shared.clone(), latency))).collect();
    let outcome = deliver::run(shared, tasks, now_ns(), publish(&mut sink, size, pace), HARD_LIMIT).await;
    let _ = sink.close().await;
    drainer.abort();
    outcome
}

/// A note for a run that did not deliver everything.
pub fn shortfall(o: &Outcome) -> Option<String> {
    let lost = o.lost();
    (lost > 0 || o.total.error.is_some()).then(|| {
        format!(
            "{lost} deliveries neither made nor reported missed{}",
            o.total.error.as_deref().map(|e| format!("; a subscriber: {e}")).unwrap_or_default()
        )
    })
}

pub fn with_note(mut figures: Vec<Figure>, note: Option<String>) -> Vec<Figure> {
    if let (Some(note), Some(first)) = (note, figures.first_mut()) {
        first.note = Some(note);
    }
    figures
}

pub fn steady_name(args: &Args, n: usize, relay: bool) -> String {
    if relay {
        format!("raw relay, {n} receivers, {}/s", args.rate)
    } else {
        format!("event hop, {n} subs, {}/s", args.rate)
    }
}

pub fn saturated_name(n: usize, size: usize, relay: bool) -> String {
    if relay {
        format!("raw relay saturated, {n} receivers, {size} B")
    } else {
        format!("event hop saturated, {n} subs, {size} B")
    }
}

/// Event hop at `--rate`.
pub async fn event_hop(target: &Target, args: &Args, n: usize) -> anyhow::Result<Vec<Figure>> {
    let pace = Pace::Steady { count: args.count, per_sec: args.rate };
    let o = through_bridge(target, n, args.size, pace, true).await?;
    let name = steady_name(args, n, false);
    let mut figures = latency(&name, percentiles(&o), Some("raw hop"), Some(&steady_name(args, n, true)));
    if n == 100 {
        figures[1].goal = Some(Goal::HopTimes(2.0));
    }
    figures.push(Figure::new(format!("{name}: missed"), o.total.missed as f64, "events"));
    Ok(with_note(figures, shortfall(&o)))
}

/// Event hop with the runtime publishing as fast as the socket allows.
pub async fn event_saturation(target: &Target, args: &Args, n: usize) -> anyhow::Result<Vec<Figure>> {
    let pace = Pace::Saturate(Duration::from_secs_f64(args.saturation_secs));
    let o = through_bridge(target, n, args.size, pace, true).await?;
    Ok(saturated_figures(&o, &saturated_name(n, args.size, false), Some(&saturated_name(n, args.size, true)), true))
}

/// Fan-out throughput: deliveries counted at `--fanout-subscribers`.
pub async fn fanout(target: &Target, args: &Args, size: usize) -> anyhow::Result<Vec<Figure>> {
    let n = args.fanout_subscribers;
    let pace = Pace::Saturate(Duration::from_secs_f64(args.fanout_secs));
    let o = through_bridge(target, n, size, pace, false).await?;
    let name = format!("fan-out, {n} subs, {size} B");
    let relay = format!("raw relay saturated, {n} receivers, {size} B");
    let mut figures = saturated_figures(&o, &name, Some(&relay), false);
    if size <= 200 && n >= 1000 {
        figures[0].goal = Some(Goal::AtLeast(1_000_000.0));
    }
    Ok(figures)
}

/// Figures of a saturated run: delivered/s first, then MB/s, published/s,
/// missed and (with `latency`) the latency percentiles.
pub fn saturated_figures(o: &Outcome, name: &str, relay: Option<&str>, with_latency: bool) -> Vec<Figure> {
    let per_relay = |what: &str| relay.map(|r| format!("{r}: {what}"));
    let mut delivered = Figure::new(format!("{name}: delivered/s"), o.delivered_per_sec(), "/s");
    delivered.vs_relay = per_relay("delivered/s");
    let mut mbs = Figure::new(
        format!("{name}: MB/s received"),
        o.total.bytes as f64 / 1e6 / o.deliver_time.as_secs_f64(),
        "MB/s",
    );
    mbs.vs_relay = per_relay("MB/s received");
    let mut published = Figure::new(format!("{name}: published/s"), o.published_per_sec(), "/s");
    published.vs_relay = per_relay("published/s");
    let missed = o.missed_figure(name);
    let mut figures = vec![delivered, mbs, published, missed];
    if with_latency {
        figures.extend(latency(name, percentiles(o), None, relay));
    }
    with_note(figures, shortfall(o))
}

pub fn percentiles(o: &Outcome) -> [f64; 3] {
    o.total.hist.as_ref().map_or([f64::NAN; 3], |h| h.percentiles())
}

/// The raw relay at `--rate` with `n` receivers.
pub async fn relay_steady(relay: &Relay, args: &Args, n: usize) -> anyhow::Result<Vec<Figure>> {
    let o = relay.run(n, args.size, Pace::Steady { count: args.count, per_sec: args.rate }, true).await?;
    let name = steady_name(args, n, true);
    let mut figures = latency(&name, percentiles(&o), Some("raw hop"), None);
    figures.push(Figure::new(format!("{name}: missed"), o.total.missed as f64, "events"));
    Ok(with_note(figures, shortfall(&o)))
}

/// The raw relay at saturation with `n` receivers and `size`-byte frames.
pub async fn relay_saturated(
    relay: &Relay,
    args: &Args,
    n: usize,
    size: usize,
    secs: f64,
) -> anyhow::Result<Vec<Figure>> {
    let with_latency = size == args.size;
    let o = relay.run(n, size, Pace::Saturate(Duration::from_secs_f64(secs)), with_latency).await?;
    Ok(saturated_figures(&o, &saturated_name(n, size, true), None, with_latency))
}
