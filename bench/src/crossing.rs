//! Crossing instances: a runtime frame on instance A → SSE subscribers on
//! instance B, and a command on B → the runtime on A (`POST /input`, and the
//! `POST /sync?wait=true` round trip), each next to an embedded bridge
//! measured with the same workload in the same repetition (the two one
//! after the other, in alternating order from one repetition to the next),
//! so that both see the same machine load and the added latency is a
//! difference of neighbours.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::cluster::{Cluster, as_device, wait_runtime};
use crate::events::{self, percentiles, shortfall, with_note};
use crate::figure::{Figure, Goal, latency};
use crate::options::Args;
use crate::runtime::{self, Pace};
use crate::target::{Bridge, Launch};
use crate::{commands, scrape};

/// Longest an instance may take to see a runtime of another instance.
const SEE_RUNTIME: Duration = Duration::from_secs(10);

/// The target: the cross-instance hop adds at most this to the embedded p99, µs.
pub const ADDED_P99_TARGET_US: f64 = 500.0;

/// Paired runs so far (their parity picks which half goes first).
static PAIRS: AtomicUsize = AtomicUsize::new(0);

/// Runs `embedded` and `cluster` one after the other, embedded first in
/// every other call, and returns (embedded, cluster).
pub async fn paired<E, C>(
    embedded: impl AsyncFnOnce() -> anyhow::Result<E>,
    cluster: impl AsyncFnOnce() -> anyhow::Result<C>,
) -> anyhow::Result<(E, C)> {
    if PAIRS.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
        let e = embedded().await?;
        Ok((e, cluster().await?))
    } else {
        let c = cluster().await?;
        Ok((embedded().await?, c))
    }
}

/// Runs `work` against a fresh embedded bridge, and returns its result.
pub async fn embedded<T>(
    args: &Args,
    dir: &Path,
    work: impl AsyncFnOnce(&Bridge) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let binary = args.spawn.as_ref().context("cluster scenarios need --spawn")?;
    let bridge = Bridge::spawn(&Launch::new(binary, args), args, dir).await?;
    let r = work(&bridge).await;
    let log = bridge.log.clone();
    if let Err(e) = bridge.stop(Duration::from_secs(15)).await {
        eprintln!("   stopping the embedded bridge: {e:#} (log {})", log.display());
    }
    r.context("embedded bridge")
}

/// Runs `work` against a fresh cluster of `n` instances, and returns its result.
pub async fn clustered<T>(
    args: &Args,
    dir: &Path,
    n: usize,
    ttl: Option<Duration>,
    work: impl AsyncFnOnce(&mut Cluster) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut cluster = Cluster::start(args, dir, n, ttl).await?;
    let r = work(&mut cluster).await;
    cluster.stop().await;
    r.context("cluster")
}

/// `cluster − embedded` for one percentile, as a figure.
fn added(name: String, embedded_us: f64, cluster_us: f64) -> Figure {
    Figure::new(name, cluster_us - embedded_us, "µs")
}

/// `""` for the two instances the cluster runs had before
/// `--cluster-instances` (their figures keep their names), else `, k instances`.
pub fn instances_label(k: usize) -> String {
    if k == 2 { String::new() } else { format!(", {k} instances") }
}

/// Runtime on A → `n` subscribers on B at `--rate` in a cluster of `k`
/// instances (the others only mirror the log), next to the embedded hop.
pub async fn event_hop(args: &Args, dir: &Path, n: usize, k: usize) -> anyhow::Result<Vec<Figure>> {
    let pace = Pace::Steady { count: args.count, per_sec: args.rate };
    let (e, c) = paired(
        async || embedded(args, dir, async |b| events::through_bridge(&b.target, n, args.size, pace, true).await).await,
        async || {
            clustered(args, dir, k, None, async |c| {
                let o = events::across(c.target(0), c.target(1), n, args.size, pace, true).await?;
                Ok((o, scrape::metrics(c.target(0)).await?))
            })
            .await
        },
    )
    .await?;
    let (c, a_metrics) = c;
    let (ep, cp) = (percentiles(&e), percentiles(&c));
    let rate = args.rate;
    let emb = format!("embedded event hop, {n} subs, {rate}/s");
    let clu = format!("cluster event hop A→B, {n} subs, {rate}/s{}", instances_label(k));
    let mut figures = with_note(latency(&emb, ep, Some("raw hop"), None), shortfall(&e));
    figures.extend(with_note(latency(&clu, cp, Some("raw hop"), None), shortfall(&c)));
    figures.push(Figure::new(format!("{clu}: missed"), c.total.missed as f64, "events"));
    figures.push(added(format!("{clu}: added p50"), ep[0], cp[0]));
    figures.push(
        added(format!("{clu}: added p99"), ep[1], cp[1])
            .goal(Goal::AtMost(ADDED_P99_TARGET_US))
            .note("cluster p99 − embedded p99 of the same repetition"),
    );
    // A's own account of the Redis leg: its runtime's event queued for the
    // log → the same event read back by its mirror (B's mirror reads it at
    // about the same time).
    for q in ["0.5", "0.99"] {
        let v = scrape::quantile(&a_metrics, "letta_bridge_append_visible_seconds", q).unwrap_or(f64::NAN);
        let label = if q == "0.5" { "p50" } else { "p99" };
        let mut f = Figure::new(format!("{clu}: A's append→visible {label}"), v * 1e6, "µs");
        if q == "0.99" {
            f = f.note("bridge summary letta_bridge_append_visible_seconds of A after the run: queued for Redis → in A's mirror");
        }
        figures.push(f);
    }
    Ok(figures)
}

/// `POST /input` on B → the runtime on A, concurrency 1, next to embedded.
pub async fn input(args: &Args, dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let count = args.count;
    let ((eh, er), (ch, cr)) = paired(
        async || {
            embedded(args, dir, async |b| {
                let ws = runtime::connect(&b.target, "bench", SEE_RUNTIME).await?;
                commands::inputs(ws, &b.target, count, 1).await
            })
            .await
        },
        async || {
            clustered(args, dir, 2, None, async |c| {
                let ws = runtime::connect(&as_device(c.target(0), "bench"), "bench", SEE_RUNTIME).await?;
                wait_runtime(c.target(1), "bench", true, SEE_RUNTIME).await?;
                commands::inputs(ws, c.target(1), count, 1).await
            })
            .await
        },
    )
    .await?;
    let (ep, cp) = (eh.percentiles(), ch.percentiles());
    let emb = "embedded POST /input, concurrency 1";
    let clu = "cluster POST /input on B → runtime on A, concurrency 1";
    let mut figures = latency(emb, ep, Some("raw hop"), None);
    figures.push(Figure::new(format!("{emb}: requests/s"), er, "/s"));
    figures.extend(latency(clu, cp, Some("raw hop"), None));
    figures.push(Figure::new(format!("{clu}: requests/s"), cr, "/s"));
    figures.push(added(format!("{clu}: added p50"), ep[0], cp[0]));
    figures.push(
        added(format!("{clu}: added p99"), ep[1], cp[1]).note("cluster p99 − embedded p99 of the same repetition"),
    );
    Ok(figures)
}

/// `POST /sync?wait=true` on B answered by the runtime on A, concurrency 1,
/// for `--saturation-secs`, next to embedded.
pub async fn sync(args: &Args, dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let span = Duration::from_secs_f64(args.saturation_secs);
    let (e, c) = paired(
        async || {
            embedded(args, dir, async |b| {
                let ws = runtime::connect(&b.target, "bench", SEE_RUNTIME).await?;
                commands::syncs(ws, &b.target, span, 1).await
            })
            .await
        },
        async || {
            clustered(args, dir, 2, None, async |c| {
                let ws = runtime::connect(&as_device(c.target(0), "bench"), "bench", SEE_RUNTIME).await?;
                wait_runtime(c.target(1), "bench", true, SEE_RUNTIME).await?;
                commands::syncs(ws, c.target(1), span, 1).await
            })
            .await
        },
    )
    .await?;
    let (ep, cp) = (e.hist.percentiles(), c.hist.percentiles());
    let emb = "embedded sync?wait=true, concurrency 1";
    let clu = "cluster sync?wait=true on B, runtime on A, concurrency 1";
    let mut figures = vec![
        Figure::new(format!("{emb}: round trips/s"), e.per_sec, "/s")
            .note(format!("the runtime answered {} syncs", e.answered)),
    ];
    figures.extend(latency(emb, ep, Some("raw hop"), None));
    figures.push(
        Figure::new(format!("{clu}: round trips/s"), c.per_sec, "/s")
            .note(format!("the runtime answered {} syncs", c.answered)),
    );
    figures.extend(latency(clu, cp, Some("raw hop"), None));
    figures.push(added(format!("{clu}: added p50"), ep[0], cp[0]));
    figures.push(
        added(format!("{clu}: added p99"), ep[1], cp[1]).note("cluster p99 − embedded p99 of the same repetition"),
    );
    Ok(figures)
}
