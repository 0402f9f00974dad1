//! Benchmark harness for letta-bridge (issue 5), driving a bridge as a whole
//! process over loopback the way real clients do — a fake runtime on the
//! runtime WebSocket, SSE subscribers and HTTP/1.1 keep-alive command clients
//! on raw TCP — next to raw tokio-tungstenite baselines measured in the same
//! run. The target is given by URL options, so any bridge with the same
//! surface (`POST /input`, `POST /sync`, `GET /events`, a runtime WebSocket)
//! can be measured; `--spawn PATH` starts the bridge itself instead.
//!
//! ```sh
//! cargo run --release --manifest-path bench/Cargo.toml -- --all --spawn target/release/letta-bridge
//! cargo run --release --manifest-path bench/Cargo.toml -- --only event-hop,input \
//!     --http-url http://127.0.0.1:8284 --register   # tokens from LETTA_BRIDGE_*_TOKEN
//! ```
//!
//! # Options
//!
//! `--help` documents each. Target: `--http-url`, `--ws-url`, `--runtime-token`,
//! `--client-token` (or `LETTA_BRIDGE_RUNTIME_TOKEN` / `LETTA_BRIDGE_CLIENT_TOKEN`),
//! `--register` (fake runtime registers first) or direct mode (default),
//! `--spawn PATH` (+ `--bridge-env K=V`), `--pid` (memory of a bridge not
//! spawned here), `--rss-limit`. Peer: `--peer [PATH]`, `--peer-node`.
//! Selection: `--all` or `--only a,b`, `--cluster` (the cluster scenarios),
//! `--no-baselines`; `soak` and `churn` only by name.
//! Workload: `--reps`, `--count`, `--rate`, `--size`, `--subscribers`,
//! `--input-concurrency`, `--sync-concurrency`, `--saturation-secs`,
//! `--fanout-subscribers`, `--fanout-sizes`, `--fanout-secs`,
//! `--memory-subscribers`, `--relay-memory-receivers`, `--startup-runs`,
//! `--callgrind-subscribers`, `--callgrind-events`, `--callgrind-rate`,
//! `--callgrind-inputs`, `--valgrind`, `--callgrind-control`. Cluster:
//! `--redis-server`, `--cluster-subscribers`, `--append-instances`,
//! `--append-secs`, `--append-window`, `--node-ttl`. Soak: `--soak-subscribers`,
//! `--soak-rate`, `--soak-duration`, `--soak-sample`. Churn:
//! `--churn-subscribers`, `--churn-rate`, `--churn-duration`. Output: `--json`,
//! `--keep-work-dir`.
//!
//! # Layout
//!
//! Dependencies point one way, from the scenarios down to small leaf modules;
//! no module imports one that imports it.
//!
//! - `cases`: scenarios → cases × repetitions, each against a fresh bridge or relay; failures reported, run goes on.
//! - Scenarios: `events` (event hop, steady and saturated, fan-out, and the relay runs); `commands` (`POST /input`
//!   latency, `POST /sync?wait=true` round trips); `memory` (RSS idle and per idle subscriber, held by
//!   `bench hold` children); `soak` (many counting subscribers and a steady command load for minutes: RSS over
//!   time, events lost); `churn` (subscribers cut and resumed with `Last-Event-ID`: delivery, duplicates,
//!   publish → receive); `startup` (spawn → first `/healthz` 200, binary size); `instructions` (callgrind
//!   instructions per delivered event and per command, counters zeroed and dumped around the work).
//! - Cluster scenarios: `crossing` (runtime on A → SSE on B, and commands on B → runtime on A, each paired with an
//!   embedded bridge in the same repetition); `append` (events/s through one Redis with 1 and N instances, fan-out
//!   on B vs embedded, windowed publishers); `failover` (SIGKILL the runtime's instance → `instance_lost` on
//!   another); on `cluster` (N instances on one Redis, shared tokens, a fresh cluster name) and `redis` (a
//!   redis-server of the harness: Unix socket, no persistence).
//! - Drivers: `runtime` (the fake runtime: direct or registered connection, stamped frames, steady or saturating
//!   publisher); `sse` (SSE subscriber on raw TCP: chunked decoding, memchr event splitting, `lagged`
//!   accounting); `hold` (`bench hold`: a child process holding idle or counting subscriptions); `relay` (the raw
//!   baselines: one WebSocket hop, and the fan-out relay server, `bench relay`); `deliver` (one publish → N
//!   subscribers run and its outcome: delivered/s, missed, latency); `http` (raw HTTP/1.1 keep-alive client);
//!   `scrape` (a figure from the bridge's `/metrics`).
//! - `target`: the bridge under test — URLs and tokens, or a spawned process (free port, tokens, RSS ceiling,
//!   SIGTERM); `peer`: the hand-written Node bridge of `bench/peers/` (`--peer`): how it starts, what it cannot
//!   measure.
//! - `options`: the command line and the hidden helper subcommands; `report`: medians, ratios, targets, the
//!   table and the JSON file.
//! - Leaves (no `crate::` imports): `scenario` (names, order, baselines, help text); `figure` (a named value with
//!   its unit, baselines and target); `side` (ours or the peer); `tokens` (a bridge's bearer tokens); `procfs`
//!   (RSS, status fields, descriptors from `/proc`); `cpu` (CPU % from `/proc`); `machine` (the report header's
//!   machine, load and date); `chunked` (response heads and chunked bodies); `stats` (clock, histogram, median).
//!
//! Latencies are measured with one monotonic clock: the sender stamps each
//! frame (`"t":<ns>`) and the receiver subtracts on arrival, so the bench
//! process is both ends of every hop.

mod append;
mod cases;
mod chunked;
mod churn;
mod cluster;
mod commands;
mod cpu;
mod crossing;
mod deliver;
mod events;
mod failover;
mod figure;
mod hold;
mod http;
mod instructions;
mod machine;
mod memory;
mod options;
mod peer;
mod procfs;
mod redis;
mod relay;
mod report;
mod runtime;
mod scenario;
mod scrape;
mod side;
mod soak;
mod sse;
mod startup;
mod stats;
mod target;
mod tokens;

use std::time::Instant;

use clap::Parser;

use options::{Args, Helper};
use report::{Header, Results};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.helper.clone() {
        Some(Helper::Hold { addr, token, count, first, counting }) => {
            return hold::hold(addr, token, count, first, counting);
        }
        Some(Helper::Relay) => return relay::serve(),
        None => {}
    }
    stats::now_ns();
    let (soft, hard) = target::raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(args, soft, hard))
}

async fn run(args: Args, soft: u64, hard: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let work = options::work_dir();
    std::fs::create_dir_all(&work)?;
    let bridge = match &args.spawn {
        Some(path) => format!("{} ({}, spawned per case)", target::version_of(path), path.display()),
        None => format!("external: {} (runtime {})", args.http_url, if args.register { "registers" } else { "direct" }),
    };
    let peer = peer::Peer::from_args(&args)?;
    let load_at_start = machine::loadavg();
    let mut header = Header {
        machine: machine::machine(),
        date: machine::utc_now(),
        bridge,
        options: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        limits: format!(
            "open files {soft} (hard {hard}) per process, bench and bridge alike; MB = 10^6 B, KB = 10^3 B"
        ),
        load: String::new(),
        redis: None,
        peer: peer.as_ref().map(peer::Peer::describe),
    };
    if args.scenarios().iter().any(|s| s.is_cluster()) && cases::cluster_unavailable(&args).is_none() {
        let v = redis::version(&args.redis_server).unwrap_or_default();
        header.redis = Some(format!(
            "redis-server {v} ({}), one per repetition on a Unix socket, --save '' --appendonly no",
            args.redis_server.display()
        ));
    }
    let names: Vec<&str> = args.scenarios().iter().map(|s| s.name()).collect();
    eprintln!("scenarios: {}; {} repetitions; working files in {}", names.join(", "), args.reps, work.display());
    let mut results = if peer.is_some() { Results::with_peer() } else { Results::default() };
    cases::run_all(&args, peer.as_ref(), &work, &mut results).await;
    header.load = format!("{load_at_start} at the start, {} at the end (1, 5, 15 min averages)", machine::loadavg());
    let table = results.table(&header);
    println!("\n{table}");
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    results.write_json(&header, &args.json)?;
    println!("JSON: {}", args.json.display());
    if !args.keep_work_dir {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}
