//! The measurement plan: each scenario becomes cases (one per subscriber
//! count, concurrency or size), each repeated `--reps` times against a fresh
//! bridge (or relay) of its own; a failing case is reported and the run goes
//! on with the next.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::options::{Args, Scenario};
use crate::relay::{self, Relay};
use crate::report::{Figure, Results, latency};
use crate::target::{Bridge, Launch, Target};
use crate::{append, commands, crossing, events, failover, instructions, memory, startup};

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
    ClusterEventHop(usize),
    ClusterInput,
    ClusterSync,
    /// `None`: an embedded bridge with the same publisher (the reference).
    Append(Option<usize>),
    ClusterFanout(usize),
    ClusterDead,
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
        Scenario::Memory => vec![Case::Memory, Case::RelayMemory(args.relay_memory_receivers)],
        Scenario::Startup => vec![Case::Startup],
        Scenario::Instructions => vec![Case::Instructions],
        Scenario::ClusterEventHop => args.cluster_subscribers.iter().map(|&n| Case::ClusterEventHop(n)).collect(),
        Scenario::ClusterInput => vec![Case::ClusterInput, Case::ClusterSync],
        Scenario::ClusterAppend => {
            let mut v = vec![Case::Append(None)];
            v.extend(args.append_instances.iter().map(|&k| Case::Append(Some(k.max(1)))));
            v
        }
        Scenario::ClusterFanout => args.fanout_sizes.iter().map(|&s| Case::ClusterFanout(s)).collect(),
        Scenario::ClusterDead => vec![Case::ClusterDead],
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

/// Runs every case of the selected scenarios into `results`.
pub async fn run_all(args: &Args, work: &Path, results: &mut Results) {
    let scenarios = args.scenarios();
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
            if let Err(e) = run_case(args, work, scenario, case, results).await {
                eprintln!("   FAILED: {e:#}");
                results.error(label, format!("{e:#}"));
            }
            eprintln!("   {:.1} s", started.elapsed().as_secs_f64());
        }
    }
}

async fn run_case(
    args: &Args,
    work: &Path,
    scenario: Scenario,
    case: Case,
    results: &mut Results,
) -> anyhow::Result<()> {
    let env = match case {
        Case::RelaySteady(_) | Case::RelaySaturated { .. } => Env::Relay(Relay::spawn().await?),
        Case::EventHop(_) | Case::EventSaturation(_) | Case::Input(_) | Case::Sync(_) | Case::Fanout(_) => {
            match &args.spawn {
                Some(binary) => {
                    let bridge = Bridge::spawn(&Launch::new(binary, args), args, work).await?;
                    Env::Bridge { target: bridge.target.clone(), spawned: Some(Box::new(bridge)) }
                }
                None => Env::Bridge { target: Target::from_args(args)?, spawned: None },
            }
        }
        _ => Env::None,
    };
    if let Case::Startup = case {
        // Once, not per repetition: it does not vary.
        let binary = args.spawn.as_ref().context("start-up needs --spawn")?;
        results.add(scenario.name(), vec![startup::binary_size(binary)?]);
    }
    let mut outcome = Ok(());
    for rep in 0..args.reps {
        match one(args, work, case, &env).await {
            Ok(figures) => results.add(scenario.name(), figures),
            Err(e) => {
                outcome = Err(e.context(format!("repetition {}", rep + 1)));
                break;
            }
        }
    }
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
    outcome
}

/// One repetition of `case`.
async fn one(args: &Args, work: &Path, case: Case, env: &Env) -> anyhow::Result<Vec<Figure>> {
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
        Case::Memory => match (&args.spawn, args.pid) {
            (_, Some(pid)) => {
                memory::measure(&Target::from_args(args)?, pid, &args.memory_subscribers, args.relay_memory_receivers)
                    .await
            }
            (Some(binary), None) => {
                let bridge = Bridge::spawn(&Launch::new(binary, args), args, work).await?;
                let r =
                    memory::measure(&bridge.target, bridge.pid, &args.memory_subscribers, args.relay_memory_receivers)
                        .await;
                let _ = bridge.stop(Duration::from_secs(30)).await;
                r
            }
            (None, None) => bail!("memory needs --spawn or --pid"),
        },
        Case::Startup => {
            let binary = args.spawn.as_ref().context("start-up needs --spawn")?;
            let env = Launch::new(binary, args).extra_env;
            startup::measure(binary, &env, args.startup_runs).await
        }
        Case::Instructions => {
            let binary = args.spawn.as_ref().context("instructions need --spawn")?;
            instructions::measure(args, binary, work).await
        }
        Case::ClusterEventHop(n) => crossing::event_hop(args, work, n).await,
        Case::ClusterInput => crossing::input(args, work).await,
        Case::ClusterSync => crossing::sync(args, work).await,
        Case::Append(instances) => append::append(args, work, instances).await,
        Case::ClusterFanout(size) => append::fanout(args, work, size).await,
        Case::ClusterDead => failover::dead_instance(args, work).await,
    }
}
