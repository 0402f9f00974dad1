//! The measurement plan: each scenario becomes cases (one per subscriber
//! count, concurrency or size), each repeated `--reps` times against a fresh
//! bridge (or relay) of its own; a failing case is reported and the run goes
//! on with the next. With `--peer`, each repetition of a case the peer can
//! serve runs against the bridge and the peer, one after the other, the
//! order alternating from one repetition to the next.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::figure::{Figure, latency};
use crate::options::Args;
use crate::peer::{self, Peer};
use crate::relay::{self, Relay};
use crate::report::Results;
use crate::scenario::Scenario;
use crate::side::Side;
use crate::target::{Bridge, Launch, Target};
use crate::{append, churn, commands, crossing, events, failover, instructions, memory, soak, startup};

/// One measurement, repeated `--reps` times.
#[derive(Debug, Clone, Copy)]
enum Case {
    Hop,
    RelaySteady(usize),
    RelaySaturated {
        n: usize,
        size: usize,
        secs: f64,
    },
    EventHop(usize),
    EventSaturation(usize),
    Input(usize),
    Sync(usize),
    Fanout(usize),
    Memory,
    RelayMemory(usize),
    Startup,
    Instructions,
    /// Subscribers on B, instances.
    ClusterEventHop(usize, usize),
    ClusterInput,
    ClusterSync,
    /// `None`: an embedded bridge with the same publisher (the reference).
    Append(Option<usize>),
    /// Event size, instances.
    ClusterFanout(usize, usize),
    ClusterDead,
    Soak,
    Churn,
}

impl Case {
    /// A hand-written bridge can serve this case too.
    fn peer_runs(self) -> bool {
        matches!(
            self,
            Case::EventHop(_)
                | Case::EventSaturation(_)
                | Case::Input(_)
                | Case::Sync(_)
                | Case::Fanout(_)
                | Case::Memory
                | Case::Startup
                | Case::Soak
                | Case::Churn
        )
    }
}

fn cases(scenario: Scenario, args: &Args) -> Vec<Case> {
    match scenario {
        Scenario::Hop => vec![Case::Hop],
        Scenario::Relay => {
            let mut v: Vec<Case> = args.subscribers.iter().map(|&n| Case::RelaySteady(n)).collect();
            let mut sat: Vec<(usize, usize, f64)> =
                args.subscribers.iter().map(|&n| (n, args.size, args.saturation_secs)).collect();
            for &size in &args.fanout_sizes {
                if !sat.iter().any(|&(n, s, _)| n == args.fanout_subscribers && s == size) {
                    sat.push((args.fanout_subscribers, size, args.fanout_secs));
                }
            }
            v.extend(sat.into_iter().map(|(n, size, secs)| Case::RelaySaturated { n, size, secs }));
            v
        }
        Scenario::EventHop => args.subscribers.iter().map(|&n| Case::EventHop(n)).collect(),
        Scenario::EventSaturation => args.subscribers.iter().map(|&n| Case::EventSaturation(n)).collect(),
        Scenario::Input => args.input_concurrency.iter().map(|&c| Case::Input(c)).collect(),
        Scenario::Sync => args.sync_concurrency.iter().map(|&c| Case::Sync(c)).collect(),
        Scenario::Fanout => args.fanout_sizes.iter().map(|&s| Case::Fanout(s)).collect(),
        // The relay first: the memory runs leave tens of thousands of
        // loopback connections in TIME_WAIT, and after two of them (bridge
        // and peer) the relay's receivers found no free local port.
        Scenario::Memory => vec![Case::RelayMemory(args.relay_memory_receivers), Case::Memory],
        Scenario::Startup => vec![Case::Startup],
        Scenario::Instructions => vec![Case::Instructions],
        Scenario::ClusterEventHop => (args.cluster_instances.iter())
            .flat_map(|&k| args.cluster_subscribers.iter().map(move |&n| Case::ClusterEventHop(n, k.max(2))))
            .collect(),
        Scenario::ClusterInput => vec![Case::ClusterInput, Case::ClusterSync],
        Scenario::ClusterAppend => {
            let mut v = vec![Case::Append(None)];
            v.extend(args.append_instances.iter().map(|&k| Case::Append(Some(k.max(1)))));
            v
        }
        Scenario::ClusterFanout => (args.cluster_instances.iter())
            .flat_map(|&k| args.fanout_sizes.iter().map(move |&s| Case::ClusterFanout(s, k.max(2))))
            .collect(),
        Scenario::ClusterDead => vec![Case::ClusterDead],
        Scenario::Soak => vec![Case::Soak],
        Scenario::Churn => vec![Case::Churn],
    }
}

/// What a case runs against.
enum Env {
    None,
    Relay(Relay),
    Bridge { target: Target, spawned: Option<Box<Bridge>> },
}

/// Why the cluster scenarios cannot run here, if they cannot.
pub fn cluster_unavailable(args: &Args) -> Option<String> {
    if args.spawn.is_none() {
        return Some("the cluster scenarios need --spawn (they start Redis and the instances)".into());
    }
    crate::redis::version(&args.redis_server).err().map(|e| format!("{e:#}; see --redis-server"))
}

/// Runs every case of the selected scenarios into `results`, against the
/// bridge and, when given, the peer.
pub async fn run_all(args: &Args, peer: Option<&Peer>, work: &Path, results: &mut Results) {
    let scenarios = args.scenarios();
    if peer.is_some() {
        for &scenario in &scenarios {
            if let Some(why) = peer::cannot(scenario) {
                results.peer_missing(format!("[{}]", scenario.name()), why);
            }
            let figures: &[&str] = match scenario {
                Scenario::Startup => &["release binary size"],
                Scenario::Memory => &["raw relay idle RSS", "raw relay per idle receiver"],
                _ => &[],
            };
            for what in figures {
                let why = peer::MISSING_FIGURES.iter().find(|(w, _)| w == what).map_or("", |(_, why)| why);
                results.peer_missing(*what, why);
            }
        }
    }
    let unavailable = if scenarios.iter().any(|s| s.is_cluster()) { cluster_unavailable(args) } else { None };
    for scenario in scenarios {
        if let (true, Some(why)) = (scenario.is_cluster(), &unavailable) {
            if args.asked_for(scenario) {
                eprintln!("== {}: FAILED: {why}", scenario.name());
                results.error(scenario.name().to_owned(), why.clone());
            } else {
                eprintln!("== {}: skipped: {why}", scenario.name());
                results.skip(scenario.name().to_owned(), why.clone());
            }
            continue;
        }
        for case in cases(scenario, args) {
            let label = format!("{} {case:?}", scenario.name());
            eprintln!("== {label}");
            let started = Instant::now();
            let peer = peer.filter(|_| case.peer_runs());
            for (side, e) in run_case(args, peer, work, scenario, case, results).await {
                let label = if side == Side::Peer { format!("{label} (peer)") } else { label.clone() };
                eprintln!("   FAILED{}: {e:#}", if side == Side::Peer { " (peer)" } else { "" });
                results.error(label, format!("{e:#}"));
            }
            eprintln!("   {:.1} s", started.elapsed().as_secs_f64());
        }
    }
}

/// Runs `case` `--reps` times against the bridge (and the peer, when
/// given); returns each side's first error (a side stops at its first).
async fn run_case(
    args: &Args,
    peer: Option<&Peer>,
    work: &Path,
    scenario: Scenario,
    case: Case,
    results: &mut Results,
) -> Vec<(Side, anyhow::Error)> {
    let mut sides = vec![Side::Ours];
    if peer.is_some() {
        sides.push(Side::Peer);
    }
    let mut failed: Vec<(Side, anyhow::Error)> = Vec::new();
    let mut envs = Vec::new();
    for &side in &sides {
        match env_for(args, peer, work, case, side).await {
            Ok(env) => envs.push((side, env)),
            Err(e) => failed.push((side, e)),
        }
    }
    if let Case::Startup = case
        && let Some(binary) = &args.spawn
    {
        // Once, not per repetition: it does not vary.
        match startup::binary_size(binary) {
            Ok(f) => results.add(scenario.name(), Side::Ours, vec![f]),
            Err(e) => failed.push((Side::Ours, e)),
        }
    }
    for rep in 0..args.reps {
        // Alternate which side goes first, so that both see the same drift of the machine's load.
        let order: Vec<usize> = if rep % 2 == 0 { (0..envs.len()).collect() } else { (0..envs.len()).rev().collect() };
        for i in order {
            let (side, env) = &envs[i];
            if failed.iter().any(|(s, _)| s == side) {
                continue;
            }
            match one(args, peer, work, case, env, *side).await {
                Ok(figures) => results.add(scenario.name(), *side, figures),
                Err(mut e) => {
                    if let Env::Bridge { spawned: Some(b), .. } = env
                        && let Some(why) = b.killed_for_rss()
                    {
                        e = e.context(why);
                    }
                    failed.push((*side, e.context(format!("repetition {}", rep + 1))));
                }
            }
        }
    }
    for (_, env) in envs {
        match env {
            Env::Relay(r) => r.stop().await,
            Env::Bridge { spawned: Some(b), .. } => {
                let log = b.log.clone();
                if let Err(e) = b.stop(Duration::from_secs(15)).await {
                    eprintln!("   stopping the bridge: {e:#} (log {})", log.display());
                }
            }
            _ => {}
        }
    }
    failed
}

/// What `case` runs against on `side`, for all its repetitions.
async fn env_for(args: &Args, peer: Option<&Peer>, work: &Path, case: Case, side: Side) -> anyhow::Result<Env> {
    Ok(match case {
        Case::RelaySteady(_) | Case::RelaySaturated { .. } => Env::Relay(Relay::spawn().await?),
        Case::EventHop(_) | Case::EventSaturation(_) | Case::Input(_) | Case::Sync(_) | Case::Fanout(_) => {
            match launch_for(args, peer, side) {
                Some(launch) => {
                    let bridge = Bridge::spawn(&launch?, args, work).await?;
                    Env::Bridge { target: bridge.target.clone(), spawned: Some(Box::new(bridge)) }
                }
                None => Env::Bridge { target: Target::from_args(args)?, spawned: None },
            }
        }
        _ => Env::None,
    })
}

/// How to start `side`: `None` for the bridge of the URL options (no `--spawn`).
fn launch_for(args: &Args, peer: Option<&Peer>, side: Side) -> Option<anyhow::Result<Launch>> {
    match side {
        Side::Ours => args.spawn.as_ref().map(|binary| Ok(Launch::new(binary, args))),
        Side::Peer => Some(peer.map(|p| Launch::peer(p, args)).context("no --peer")),
    }
}

/// Runs `work` against a fresh bridge (or peer) of `side` with its pid, or
/// against the bridge of the URL options (pid from `--pid`).
async fn fresh<T>(
    args: &Args,
    peer: Option<&Peer>,
    dir: &Path,
    side: Side,
    work: impl AsyncFnOnce(&Target, Option<u32>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match launch_for(args, peer, side) {
        None => work(&Target::from_args(args)?, args.pid).await,
        Some(launch) => {
            let bridge = Bridge::spawn(&launch?, args, dir).await?;
            let r = work(&bridge.target, Some(bridge.pid)).await;
            let r = match bridge.killed_for_rss() {
                Some(why) => r.map_err(|e| e.context(why)),
                None => r,
            };
            let log = bridge.log.clone();
            if let Err(e) = bridge.stop(Duration::from_secs(30)).await {
                eprintln!("   stopping: {e:#} (log {})", log.display());
            }
            r.with_context(|| format!("log {}", log.display()))
        }
    }
}

/// One repetition of `case` on `side`.
async fn one(
    args: &Args,
    peer: Option<&Peer>,
    work: &Path,
    case: Case,
    env: &Env,
    side: Side,
) -> anyhow::Result<Vec<Figure>> {
    let target = || match env {
        Env::Bridge { target, .. } => Ok(target),
        _ => bail!("no bridge"),
    };
    let relay = || match env {
        Env::Relay(r) => Ok(r),
        _ => bail!("no relay"),
    };
    match case {
        Case::Hop => {
            let h = relay::hop(args.count, args.rate, args.size).await?;
            Ok(latency("raw hop", h.percentiles(), None, None))
        }
        Case::RelaySteady(n) => events::relay_steady(relay()?, args, n).await,
        Case::RelaySaturated { n, size, secs } => events::relay_saturated(relay()?, args, n, size, secs).await,
        Case::EventHop(n) => events::event_hop(target()?, args, n).await,
        Case::EventSaturation(n) => events::event_saturation(target()?, args, n).await,
        Case::Input(c) => commands::input(target()?, args, c).await,
        Case::Sync(c) => commands::sync(target()?, args, c).await,
        Case::Fanout(size) => events::fanout(target()?, args, size).await,
        Case::RelayMemory(n) => {
            // A fresh relay (port) per repetition: thousands of closed
            // loopback connections to one port would exhaust the ephemeral
            // ports connect() may use while they sit in TIME_WAIT.
            let relay = Relay::spawn().await?;
            let figures = relay.memory(n).await;
            relay.stop().await;
            figures
        }
        Case::Memory => {
            fresh(args, peer, work, side, async |target, pid| {
                let pid = pid.context("memory needs --spawn or --pid")?;
                memory::measure(target, pid, &args.memory_subscribers, args.relay_memory_receivers).await
            })
            .await
        }
        Case::Soak => {
            fresh(args, peer, work, side, async |target, pid| {
                soak::soak(target, pid.context("soak needs --spawn or --pid (it samples RSS)")?, args).await
            })
            .await
        }
        Case::Churn => fresh(args, peer, work, side, async |target, _| churn::churn(target, args).await).await,
        Case::Startup => {
            let launch = launch_for(args, peer, side).context("start-up needs --spawn")??;
            startup::measure(&launch, args.startup_runs).await
        }
        Case::Instructions => {
            let binary = args.spawn.as_ref().context("instructions need --spawn")?;
            instructions::measure(args, binary, work).await
        }
        Case::ClusterEventHop(n, k) => crossing::event_hop(args, work, n, k).await,
        Case::ClusterInput => crossing::input(args, work).await,
        Case::ClusterSync => crossing::sync(args, work).await,
        Case::Append(instances) => append::append(args, work, instances).await,
        Case::ClusterFanout(size, k) => append::fanout(args, work, size, k).await,
        Case::ClusterDead => failover::dead_instance(args, work).await,
    }
}
