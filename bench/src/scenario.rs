//! The scenarios: their names on the command line, the order they run in,
//! which need a cluster or run only by name, the baselines each is compared
//! to, and the help text that describes them.

use clap::ValueEnum;

/// The scenarios as `--help` describes them (after the options).
pub const HELP: &str = "\
Scenarios (--only): hop, relay, event-hop, event-saturation, input, sync, fanout, memory, startup, instructions,
cluster-event-hop, cluster-input, cluster-append, cluster-fanout, cluster-dead (all five: --cluster),
soak, churn (long: only by name, not in --all).
  hop               raw tokio-tungstenite client -> server hop on loopback (baseline)
  relay             raw tokio-tungstenite relay: publisher -> server -> N receivers, steady and saturated (baseline)
  event-hop         runtime frame -> SSE subscribers at --rate, p50/p99/p999 per --subscribers count
  event-saturation  the same, publishing as fast as the socket allows: latency, published/s, delivered/s, missed
  input             POST /input -> frame at the runtime, keep-alive raw HTTP/1.1 at --input-concurrency
  sync              POST /sync?wait=true round trips per second and latency at --sync-concurrency
  fanout            deliveries/s and MB/s to --fanout-subscribers at --fanout-sizes, publishing at saturation
  memory            idle RSS and RSS per idle SSE subscriber (needs --spawn or --pid); raw relay RSS per idle receiver
  startup           spawn -> first 200 from GET /healthz, and the binary's size (needs --spawn)
  instructions      callgrind instructions per delivered event and per POST /input (needs --spawn and valgrind)
  soak              --soak-subscribers idle SSE subscribers (counting) and --soak-rate POST /input per second, each
                    echoed by the fake runtime as one event, for --soak-duration: RSS every --soak-sample (flat after
                    the first 10 % of the run?), events lost, commands refused (needs --spawn or --pid)
  churn             --churn-subscribers cut every ~15 s for ~2 s and resuming with Last-Event-ID while the fake runtime
                    publishes --churn-rate events/s for --churn-duration: delivery, duplicates, publish -> receive

With --peer, every scenario that a hand-written bridge can serve (all but the baselines, instructions and the
cluster scenarios) runs against the peer too, in the same repetitions.

Cluster scenarios (need --spawn and a redis-server; each repetition starts a fresh redis-server on a Unix
socket and the instances a, b, c on it under a fresh cluster name; paired embedded runs use the same binary):
  cluster-event-hop  runtime frame on A -> SSE on B at --rate, per --cluster-subscribers, next to an embedded
                     bridge measured in the same repetition; the added p99 is the target (<= 500 us)
  cluster-input      POST /input on B -> frame at the runtime on A, and POST /sync?wait=true on B, concurrency 1,
                     next to the embedded figures of the same repetition
  cluster-append     events/s through one Redis with --append-instances instances (a runtime on each, one
                     subscriber), windowed publishing (--append-window) for --append-secs; Redis' CPU and the
                     bridges' CPU; an embedded bridge with the same publisher for reference
  cluster-fanout     deliveries/s to --fanout-subscribers on B (runtime on A) vs an embedded bridge, same windowed
                     publisher, per --fanout-sizes; target: cluster >= 0.8 x embedded
  cluster-dead       SIGKILL the instance holding the runtime (LETTA_BRIDGE_NODE_TTL = --node-ttl) -> time until a
                     subscriber on the other instance gets runtime_offline with reason instance_lost

Example: cargo run --release --manifest-path bench/Cargo.toml -- --all --spawn target/release/letta-bridge";

/// One measured scenario, in the order they run.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    Hop,
    Relay,
    EventHop,
    EventSaturation,
    Input,
    Sync,
    Fanout,
    Memory,
    Startup,
    Instructions,
    ClusterEventHop,
    ClusterInput,
    ClusterAppend,
    ClusterFanout,
    ClusterDead,
    Soak,
    Churn,
}

impl Scenario {
    pub const CLUSTER: [Scenario; 5] = [
        Scenario::ClusterEventHop,
        Scenario::ClusterInput,
        Scenario::ClusterAppend,
        Scenario::ClusterFanout,
        Scenario::ClusterDead,
    ];

    /// Every scenario but the long ones (`soak`, `churn`), which run only when named.
    pub const ALL: [Scenario; 15] = [
        Scenario::Hop,
        Scenario::Relay,
        Scenario::EventHop,
        Scenario::EventSaturation,
        Scenario::Input,
        Scenario::Sync,
        Scenario::Fanout,
        Scenario::Memory,
        Scenario::Startup,
        Scenario::Instructions,
        Scenario::ClusterEventHop,
        Scenario::ClusterInput,
        Scenario::ClusterAppend,
        Scenario::ClusterFanout,
        Scenario::ClusterDead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Hop => "hop",
            Scenario::Relay => "relay",
            Scenario::EventHop => "event-hop",
            Scenario::EventSaturation => "event-saturation",
            Scenario::Input => "input",
            Scenario::Sync => "sync",
            Scenario::Fanout => "fanout",
            Scenario::Memory => "memory",
            Scenario::Startup => "startup",
            Scenario::Instructions => "instructions",
            Scenario::ClusterEventHop => "cluster-event-hop",
            Scenario::ClusterInput => "cluster-input",
            Scenario::ClusterAppend => "cluster-append",
            Scenario::ClusterFanout => "cluster-fanout",
            Scenario::ClusterDead => "cluster-dead",
            Scenario::Soak => "soak",
            Scenario::Churn => "churn",
        }
    }

    /// Needs a Redis and several instances.
    pub fn is_cluster(self) -> bool {
        Scenario::CLUSTER.contains(&self)
    }

    /// The baselines this scenario's ratios refer to.
    pub fn baselines(self) -> &'static [Scenario] {
        match self {
            Scenario::EventHop | Scenario::EventSaturation | Scenario::Fanout => &[Scenario::Hop, Scenario::Relay],
            Scenario::Input | Scenario::Sync | Scenario::ClusterEventHop | Scenario::ClusterInput => &[Scenario::Hop],
            _ => &[],
        }
    }
}
