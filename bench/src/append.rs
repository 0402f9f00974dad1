//! Throughput through the shared log: events/s appended through one Redis
//! with 1 and with N instances (a fake runtime on each, one subscriber
//! counting what arrives), with Redis' and the bridges' CPU over the run;
//! and fan-out per instance in cluster mode (runtime on A, subscribers on B)
//! next to an embedded bridge.
//!
//! Publishers keep a window of events in flight (published, not yet seen by
//! the average subscriber) instead of writing as fast as the socket takes
//! frames: the bridge reads a runtime socket without pushing back, and a
//! cluster instance whose runtime outruns Redis fills its append queue
//! (10,000 events) and fences itself. Every run here, embedded included,
//! uses the same windowed publisher.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};

use crate::cluster::{as_device, node_id};
use crate::cpu::{Meter, Usage};
use crate::crossing::{clustered, embedded, instances_label, paired};
use crate::deliver::{self, Outcome, Shared};
use crate::events::{HARD_LIMIT, OPEN_PARALLEL, shortfall, with_note};
use crate::figure::{Figure, Goal};
use crate::options::Args;
use crate::runtime;
use crate::sse;
use crate::stats::now_ns;
use crate::target::Target;

/// The target for one Redis, events/s.
pub const APPEND_TARGET: f64 = 20_000.0;

/// The target for fan-out per instance: cluster ÷ embedded.
pub const FANOUT_TARGET: f64 = 0.8;

/// A windowed run and the CPU its processes used.
struct Run {
    outcome: Outcome,
    /// Redis' CPU (cluster runs).
    redis_cpu: Option<Usage>,
    /// The bridges' CPU summed.
    bridges_cpu: Usage,
    /// This harness's CPU (publishers and subscribers).
    harness_cpu: Usage,
    /// The CPU of the bridge serving the subscribers (the last of `bridge_pids`).
    serving_cpu: Usage,
    /// Each bridge's CPU, in `bridge_pids`' order.
    each_cpu: Vec<Usage>,
}

/// One runtime on each of `runtimes` (devices `bench-a`, `bench-b`, …)
/// publishing `size`-byte frames for `span` with at most `window` in
/// flight, to `subs` subscribers on `subscribe_at`; `bridge_pids` are the
/// bridges whose CPU is summed, the one serving the subscribers last.
#[allow(clippy::too_many_arguments)]
async fn windowed(
    runtimes: &[Target],
    subscribe_at: &Target,
    subs: usize,
    size: usize,
    span: Duration,
    window: u64,
    redis_pid: Option<u32>,
    bridge_pids: &[u32],
) -> anyhow::Result<Run> {
    let mut sinks = Vec::with_capacity(runtimes.len());
    let mut drainers = Vec::with_capacity(runtimes.len());
    for (i, t) in runtimes.iter().enumerate() {
        let device = format!("bench-{}", node_id(i));
        let ws = runtime::connect(&as_device(t, &device), &device, Duration::from_secs(10)).await?;
        let (sink, stream) = ws.split();
        sinks.push(sink);
        drainers.push(tokio::spawn(runtime::drain(stream)));
    }
    let streams = sse::open_many(subscribe_at, subs, OPEN_PARALLEL, |_| None).await?;
    let shared = Shared::windowed();
    let tasks = streams.into_iter().map(|s| tokio::spawn(s.run(shared.clone(), false))).collect();
    let redis_meter = redis_pid.map(|p| Meter::start(&[p])).transpose()?;
    let bridges_meter = Meter::start(bridge_pids)?;
    let harness_meter = Meter::start(&[std::process::id()])?;
    let serving_meter = Meter::start(&bridge_pids[bridge_pids.len() - 1..])?;
    let each_meter = bridge_pids.iter().map(|p| Meter::start(&[*p])).collect::<Result<Vec<_>, _>>()?;
    let publish = {
        let shared = shared.clone();
        let sinks = &mut sinks;
        async move {
            let runs = sinks.iter_mut().map(|s| runtime::publish_windowed(s, size, span, window, &shared, subs));
            let mut sent = 0;
            let mut took = Duration::ZERO;
            for r in futures_util::future::join_all(runs).await {
                let (s, d) = r?;
                sent += s;
                took = took.max(d);
            }
            anyhow::Ok((sent, took))
        }
    };
    let outcome = deliver::run(shared, tasks, now_ns(), publish, HARD_LIMIT).await;
    let redis_cpu = redis_meter.map(|m| m.read()).transpose()?;
    let bridges_cpu = bridges_meter.read()?;
    let harness_cpu = harness_meter.read()?;
    let serving_cpu = serving_meter.read()?;
    let each_cpu = each_meter.into_iter().map(|m| m.read()).collect::<Result<Vec<_>, _>>()?;
    for mut s in sinks {
        let _ = s.close().await;
    }
    for d in drainers {
        d.abort();
    }
    Ok(Run { outcome: outcome?, redis_cpu, bridges_cpu, harness_cpu, serving_cpu, each_cpu })
}

/// Sustained appends: `instances` = `None` is an embedded bridge with the
/// same publisher (the reference), `Some(k)` a cluster of k instances.
pub async fn append(args: &Args, dir: &Path, instances: Option<usize>) -> anyhow::Result<Vec<Figure>> {
    let span = Duration::from_secs_f64(args.append_secs);
    let (size, window) = (args.size, args.append_window);
    let (name, run, at) = match instances {
        None => {
            let run = embedded(args, dir, async |b| {
                windowed(std::slice::from_ref(&b.target), &b.target, 1, size, span, window, None, &[b.pid]).await
            })
            .await?;
            ("append, embedded, same publisher".to_owned(), run, "it")
        }
        Some(k) => {
            let run = clustered(args, dir, k, None, async |c| {
                let targets: Vec<Target> = c.instances.iter().map(|b| b.target.clone()).collect();
                let serving = 1.min(k - 1);
                let mut pids = c.pids();
                let last = pids.remove(serving);
                pids.push(last);
                windowed(&targets, &targets[serving], 1, size, span, window, Some(c.redis.pid), &pids).await
            })
            .await?;
            let name = format!("cluster append, {k} instance{}", if k == 1 { "" } else { "s" });
            (name, run, if k == 1 { "a" } else { "b" })
        }
    };
    let o = &run.outcome;
    let runtimes = instances.unwrap_or(1);
    let mut rate = Figure::new(format!("{name}: events/s"), o.delivered_per_sec(), "/s").note(format!(
        "{} events from {runtimes} runtime{} to 1 subscriber on {at}, {size} B, ≤ {window} in flight, {} s",
        o.total.events,
        if runtimes == 1 { "" } else { "s" },
        args.append_secs
    ));
    if instances.is_some() {
        rate = rate.goal(Goal::AtLeast(APPEND_TARGET));
    }
    let mut figures = vec![rate];
    let events = o.total.events;
    if let Some(cpu) = run.redis_cpu {
        figures.push(
            Figure::new(format!("{name}: Redis CPU"), cpu.percent, "%")
                .note("of one core, /proc utime+stime from the first publish to the last delivery"),
        );
        figures.push(Figure::new(format!("{name}: Redis CPU per event"), cpu.us_per(events), "µs"));
    }
    figures.push(
        Figure::new(format!("{name}: bridges' CPU"), run.bridges_cpu.percent, "%")
            .note("of one core, all instances summed, same span"),
    );
    figures.push(
        Figure::new(format!("{name}: bridges' CPU per event"), run.bridges_cpu.us_per(events), "µs")
            .note("all instances summed"),
    );
    if let Some(k) = instances.filter(|&k| k > 1) {
        // `windowed` got the serving instance (b) last.
        let mut names: Vec<char> = (0..k).map(|i| char::from(b'a' + i as u8)).filter(|&c| c != 'b').collect();
        names.push('b');
        for (c, cpu) in names.iter().zip(&run.each_cpu) {
            let what = if *c == 'b' { "its runtime, the mirror and the subscriber" } else { "its runtime and the mirror" };
            figures.push(
                Figure::new(format!("{name}: instance {c} CPU per event"), cpu.us_per(events), "µs")
                    .note(format!("{what}; per event of the whole cluster")),
            );
        }
    }
    figures.push(
        Figure::new(format!("{name}: harness CPU"), run.harness_cpu.percent, "%")
            .note("of one core: the fake runtimes and the subscriber, same span"),
    );
    Ok(with_note(figures, shortfall(o)))
}

/// Fan-out to `--fanout-subscribers` with `size`-byte frames: an embedded
/// bridge and a cluster of `k` with the runtime on A and the subscribers on
/// B (the others only mirror the log), paired as in [`crate::crossing`].
pub async fn fanout(args: &Args, dir: &Path, size: usize, k: usize) -> anyhow::Result<Vec<Figure>> {
    let n = args.fanout_subscribers;
    let span = Duration::from_secs_f64(args.fanout_secs);
    let window = args.append_window;
    let (e, c) = paired(
        async || {
            embedded(args, dir, async |b| {
                windowed(std::slice::from_ref(&b.target), &b.target, n, size, span, window, None, &[b.pid]).await
            })
            .await
        },
        async || {
            clustered(args, dir, k, None, async |c| {
                let a = c.target(0).clone();
                // B, which serves the subscribers, last.
                let mut pids = c.pids();
                let b = pids.remove(1);
                pids.push(b);
                windowed(std::slice::from_ref(&a), c.target(1), n, size, span, window, Some(c.redis.pid), &pids)
                    .await
            })
            .await
        },
    )
    .await?;
    let k_label = instances_label(k);
    let mut figures = outcome_figures(&format!("fan-out windowed, embedded, {n} subs, {size} B"), &e);
    figures.extend(outcome_figures(&format!("fan-out windowed, cluster A→B, {n} subs, {size} B{k_label}"), &c));
    if let Some(cpu) = c.redis_cpu {
        figures.push(
            Figure::new(
                format!("fan-out windowed, cluster A→B, {n} subs, {size} B{k_label}: Redis CPU"),
                cpu.percent,
                "%",
            )
            .note("of one core"),
        );
    }
    let ratio = c.outcome.delivered_per_sec() / e.outcome.delivered_per_sec();
    figures.push(
        Figure::new(format!("fan-out windowed, {n} subs, {size} B{k_label}: cluster ÷ embedded"), ratio, "×")
            .goal(Goal::AtLeast(FANOUT_TARGET))
            .note("delivered/s of the two runs of the same repetition"),
    );
    Ok(figures)
}

fn outcome_figures(name: &str, run: &Run) -> Vec<Figure> {
    let o = &run.outcome;
    let figures = vec![
        Figure::new(format!("{name}: delivered/s"), o.delivered_per_sec(), "/s"),
        Figure::new(format!("{name}: published/s"), o.published_per_sec(), "/s"),
        o.missed_figure(name),
        Figure::new(format!("{name}: bridges' CPU"), run.bridges_cpu.percent, "%")
            .note("of one core, all instances summed"),
        Figure::new(
            format!("{name}: bridges' CPU per delivery"),
            run.bridges_cpu.secs * 1e9 / o.total.events.max(1) as f64,
            "ns",
        )
        .note("all instances summed"),
        Figure::new(
            format!("{name}: subscribers' instance CPU per delivery"),
            run.serving_cpu.secs * 1e9 / o.total.events.max(1) as f64,
            "ns",
        )
        .note("the one bridge serving the subscribers (B in the cluster)"),
        Figure::new(format!("{name}: harness CPU"), run.harness_cpu.percent, "%").note("of one core"),
    ];
    with_note(figures, shortfall(o))
}
