//! Command-line options: the target, the peer, the scenario selection and the
//! workload knobs, plus the hidden helper subcommands the harness re-executes
//! itself with (`hold`, `relay`). The scenarios themselves are `scenario`'s.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::scenario::{self, Scenario};

/// The peer the bench ships (`--peer` without a path): `node` runs it.
const DEFAULT_PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/node-bridge/bridge.mjs");

/// Measure a bridge (letta-bridge or anything with the same surface) over
/// loopback, next to raw tokio-tungstenite baselines measured in the same run.
///
/// Either point it at a running bridge (`--http-url`, `--ws-url`, tokens) or let
/// it start one (`--spawn PATH`, needed for start-up and instruction counts, and
/// for memory unless `--pid` is given). Prints one table and writes the same
/// figures as JSON.
#[derive(Parser, Debug, Clone)]
#[command(version, about, long_about, after_help = scenario::HELP)]
pub struct Args {
    /// The bridge's plain-HTTP base URL (REST commands and `GET /events`).
    /// Ignored with `--spawn`.
    #[arg(long, default_value = "http://127.0.0.1:8284", value_name = "URL")]
    pub http_url: String,

    /// The runtime WebSocket URL for direct mode (connect with the bearer
    /// runtime token). Default: `ws://<host of --http-url>/ws?deviceId=bench`.
    /// Ignored with `--register` (the registration answers the URL) and with `--spawn`.
    #[arg(long, value_name = "URL")]
    pub ws_url: Option<String>,

    /// Token the fake runtime presents. Generated with `--spawn`.
    #[arg(long, env = "LETTA_BRIDGE_RUNTIME_TOKEN", hide_env_values = true, default_value = "")]
    pub runtime_token: String,

    /// Token the HTTP clients and SSE subscribers present. Generated with `--spawn`.
    #[arg(long, env = "LETTA_BRIDGE_CLIENT_TOKEN", hide_env_values = true, default_value = "")]
    pub client_token: String,

    /// Registration mode: the fake runtime first calls `POST
    /// /v1/environments/register` at `--http-url` and connects to the `wsUrl`
    /// it answers (plus `?deviceId=…&connectionName=…`). Default: direct mode.
    #[arg(long)]
    pub register: bool,

    /// Start the bridge binary at PATH on a free loopback port with generated
    /// tokens, once per scenario (fresh state each time). Required for
    /// `startup` and `instructions`; gives `memory` its pid.
    #[arg(long, value_name = "PATH")]
    pub spawn: Option<PathBuf>,

    /// Extra environment for spawned bridges, `KEY=VALUE` (repeatable), e.g.
    /// `--bridge-env RUST_LOG=warn`.
    #[arg(long, value_name = "KEY=VALUE")]
    pub bridge_env: Vec<String>,

    /// Pid of a bridge the harness did not spawn, for the `memory` scenario
    /// (RSS from /proc/PID/status).
    #[arg(long)]
    pub pid: Option<u32>,

    /// Also measure a peer in the same run (issue 14): the hand-written Node
    /// bridge of bench/peers/node-bridge (run with `--peer-node`; install its
    /// packages first with `npm ci --prefix bench/peers/node-bridge`), or the
    /// script or executable at PATH, started like `--spawn` with `HOST`,
    /// `PORT`, `REMOTE_TOKEN` and `CLIENT_TOKEN` in its environment. Every
    /// repetition of a case runs against both, alternating which goes first;
    /// the table gets a peer column and ours ÷ peer.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = DEFAULT_PEER_SCRIPT)]
    pub peer: Option<PathBuf>,

    /// The node binary that runs a `.mjs`/`.js` peer.
    #[arg(long, default_value = "node", value_name = "PATH")]
    pub peer_node: PathBuf,

    /// A spawned bridge or peer whose RSS passes this many MB is killed
    /// (SIGKILL), so that a target without limits cannot exhaust a shared machine.
    #[arg(long, default_value_t = 4000.0, value_name = "MB")]
    pub rss_limit: f64,

    /// Run every scenario. The cluster scenarios are skipped, with a note in
    /// the report, when there is no runnable redis-server or no `--spawn`.
    #[arg(long, conflicts_with = "only")]
    pub all: bool,

    /// Run the cluster scenarios (cluster-event-hop, cluster-input,
    /// cluster-append, cluster-fanout, cluster-dead); with `--only`, in
    /// addition to those. Needs `--spawn` and a redis-server.
    #[arg(long)]
    pub cluster: bool,

    /// The redis-server binary the cluster scenarios start (one per case, on
    /// a Unix socket in the working directory, no TCP port, no persistence).
    #[arg(long, default_value = "redis-server", value_name = "PATH")]
    pub redis_server: PathBuf,

    /// Run these scenarios only (comma-separated). The baselines a selected
    /// scenario is compared to are added unless `--no-baselines`.
    #[arg(long, value_delimiter = ',', value_name = "SCENARIOS")]
    pub only: Vec<Scenario>,

    /// Do not add baseline scenarios to an `--only` selection (ratios then show `-`).
    #[arg(long)]
    pub no_baselines: bool,

    /// Repetitions; every figure is the median of its repetitions.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,

    /// Events (or commands) per steady-rate latency measurement.
    #[arg(long, default_value_t = 2000)]
    pub count: usize,

    /// Steady publish rate for latency measurements, per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,

    /// Size of each runtime frame (its JSON) in latency runs, in bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,

    /// Subscriber counts for the event hop and the raw relay (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 100, 1000])]
    pub subscribers: Vec<usize>,

    /// Concurrencies (keep-alive connections) for `POST /input`.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64])]
    pub input_concurrency: Vec<usize>,

    /// Concurrencies for `POST /sync?wait=true`.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8])]
    pub sync_concurrency: Vec<usize>,

    /// Seconds each saturation run publishes (event hop at saturation, raw
    /// relay at saturation, sync round trips).
    #[arg(long, default_value_t = 2.0)]
    pub saturation_secs: f64,

    /// Subscriber counts on instance B for the cluster event hop (runtime on A).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 100])]
    pub cluster_subscribers: Vec<usize>,

    /// Instance counts for the cluster event hop and fan-out runs: the
    /// runtime on A, the subscribers on B, the others only mirroring the log.
    #[arg(long, value_delimiter = ',', default_values_t = [2])]
    pub cluster_instances: Vec<usize>,

    /// Instance counts for the sustained append throughput (a runtime on each,
    /// one subscriber on the second instance, or on the only one).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 3])]
    pub append_instances: Vec<usize>,

    /// Seconds each append-throughput run publishes.
    #[arg(long, default_value_t = 3.0)]
    pub append_secs: f64,

    /// Events in flight (published, not yet delivered to the average
    /// subscriber) in the append-throughput and cluster fan-out runs; below
    /// the bridge's append queue of 10,000 so that no run overflows it.
    #[arg(long, default_value_t = 4000)]
    pub append_window: u64,

    /// LETTA_BRIDGE_NODE_TTL of the instances in the dead-instance run, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub node_ttl: f64,

    /// Subscribers for the fan-out throughput run.
    #[arg(long, default_value_t = 1000)]
    pub fanout_subscribers: usize,

    /// Event sizes for the fan-out run, bytes of runtime frame JSON (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [200, 4096])]
    pub fanout_sizes: Vec<usize>,

    /// Seconds the fan-out run publishes at saturation.
    #[arg(long, default_value_t = 3.0)]
    pub fanout_secs: f64,

    /// Idle SSE subscriber counts for the memory run; a count above what the
    /// bridge's open-file limit allows is capped (and the cap explained).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 20_000])]
    pub memory_subscribers: Vec<usize>,

    /// Idle receivers of the raw relay for its RSS per receiver (the memory baseline).
    #[arg(long, default_value_t = 5000)]
    pub relay_memory_receivers: usize,

    /// Idle SSE subscribers (in `bench hold` children, counting what they
    /// receive) during the soak run.
    #[arg(long, default_value_t = 10_000)]
    pub soak_subscribers: usize,

    /// `POST /input` per second during the soak run; the fake runtime answers
    /// each with one event, which every subscriber receives.
    #[arg(long, default_value_t = 1000)]
    pub soak_rate: u64,

    /// How long the soak run sends commands (humantime: `30s`, `10m`).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub soak_duration: Duration,

    /// How often the soak run samples the target's RSS (humantime).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub soak_sample: Duration,

    /// Subscribers in the churn run, each cut every ~15 s for ~2 s and
    /// resuming with `Last-Event-ID`.
    #[arg(long, default_value_t = 100)]
    pub churn_subscribers: usize,

    /// Events per second the fake runtime publishes during the churn run.
    #[arg(long, default_value_t = 2.0)]
    pub churn_rate: f64,

    /// How long the churn run publishes (humantime).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub churn_duration: Duration,

    /// Spawns per repetition for the start-up time (their median is the rep's figure).
    #[arg(long, default_value_t = 5)]
    pub startup_runs: usize,

    /// Subscribers in the callgrind run for instructions per delivered event.
    #[arg(long, default_value_t = 100)]
    pub callgrind_subscribers: usize,

    /// Events published in each callgrind run.
    #[arg(long, default_value_t = 500)]
    pub callgrind_events: usize,

    /// `POST /input` requests in the callgrind run for instructions per command.
    #[arg(long, default_value_t = 1000)]
    pub callgrind_inputs: usize,

    /// Publish rate in the callgrind runs, per second. The bridge runs ~50x
    /// slower there: keep each event's deliveries apart (no batching), or
    /// the count depends on how loaded the machine was.
    #[arg(long, default_value_t = 100)]
    pub callgrind_rate: u64,

    /// The valgrind binary.
    #[arg(long, default_value = "valgrind", value_name = "PATH")]
    pub valgrind: PathBuf,

    /// valgrind's `callgrind_control` (zeroes and dumps the counters around the measured work).
    #[arg(long, default_value = "callgrind_control", value_name = "PATH")]
    pub callgrind_control: PathBuf,

    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results.json", value_name = "PATH")]
    pub json: PathBuf,

    /// Keep the working directory (bridge logs, callgrind files) instead of removing it.
    #[arg(long)]
    pub keep_work_dir: bool,

    #[command(subcommand)]
    pub helper: Option<Helper>,
}

impl Args {
    /// The scenarios to run, in order.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut chosen: Vec<Scenario> = if self.all || (self.only.is_empty() && !self.cluster) {
            Scenario::ALL.to_vec()
        } else {
            let mut v = self.only.clone();
            if self.cluster {
                v.extend(Scenario::CLUSTER);
            }
            if !self.no_baselines {
                let baselines: Vec<Scenario> = v.iter().flat_map(|s| s.baselines().iter().copied()).collect();
                v.extend(baselines);
            }
            v
        };
        chosen.sort();
        chosen.dedup();
        chosen
    }

    /// True when `scenario` was asked for by name (`--only`, `--cluster`),
    /// not just included by `--all` or a bare run: a scenario that cannot
    /// run is then a failure rather than a skip.
    pub fn asked_for(&self, scenario: Scenario) -> bool {
        self.only.contains(&scenario) || (self.cluster && scenario.is_cluster())
    }
}

/// Helpers the harness runs as child processes of itself.
#[derive(Subcommand, Debug, Clone)]
pub enum Helper {
    /// Hold idle SSE subscriptions open: prints `ready N` once all are open,
    /// exits when stdin closes (with `--counting`, reads and counts events). Used by the memory scenario to get past the
    /// per-process open-file limit.
    #[command(hide = true)]
    Hold {
        /// host:port of the bridge's HTTP listener.
        #[arg(long)]
        addr: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        count: usize,
        /// Index of the first connection (picks the 127.0.0.x source addresses).
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// Read and count the events (by their sequence number `n`) instead
        /// of leaving the sockets unread; each `count` line on stdin is
        /// answered with the totals.
        #[arg(long)]
        counting: bool,
    },
    /// The raw tokio-tungstenite relay server: prints `port N`, serves until
    /// stdin closes.
    #[command(hide = true)]
    Relay,
}

/// Where the working files go.
pub fn work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("letta-bench-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    #[test]
    fn cluster_scenarios_are_selected_and_asked_for() {
        let all = parse(&["--all"]);
        assert!(all.scenarios().contains(&Scenario::ClusterDead));
        assert!(!all.asked_for(Scenario::ClusterDead), "--all includes them but a missing Redis is a skip");
        let cluster = parse(&["--cluster"]);
        let chosen = cluster.scenarios();
        assert!(chosen.iter().all(|s| s.is_cluster() || *s == Scenario::Hop), "{chosen:?}");
        assert_eq!(chosen.len(), Scenario::CLUSTER.len() + 1);
        assert!(cluster.asked_for(Scenario::ClusterAppend));
        let only = parse(&["--only", "cluster-dead,input"]);
        assert!(only.asked_for(Scenario::ClusterDead));
        assert_eq!(only.scenarios(), vec![Scenario::Hop, Scenario::Input, Scenario::ClusterDead]);
    }

    #[test]
    fn soak_and_churn_run_only_by_name_and_take_humantime() {
        assert!(!parse(&["--all"]).scenarios().contains(&Scenario::Soak));
        let long = parse(&["--only", "soak,churn", "--soak-duration", "30s", "--churn-duration", "2m"]);
        assert_eq!(long.scenarios(), vec![Scenario::Soak, Scenario::Churn]);
        assert_eq!(long.soak_duration, Duration::from_secs(30));
        assert_eq!(long.churn_duration, Duration::from_secs(120));
    }

    #[test]
    fn peer_defaults_to_the_node_bridge() {
        assert_eq!(parse(&["--peer"]).peer.unwrap(), PathBuf::from(DEFAULT_PEER_SCRIPT));
        assert_eq!(parse(&["--peer", "x.mjs"]).peer.unwrap(), PathBuf::from("x.mjs"));
        assert!(parse(&[]).peer.is_none());
    }
}
