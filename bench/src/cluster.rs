//! A cluster under test: one `redis-server` of this harness and N bridge
//! instances on it (`LETTA_BRIDGE_CLUSTER_URL=redis+unix://…`), sharing
//! tokens, with node ids `a`, `b`, `c`, … and a cluster name no other case
//! used (`LETTA_BRIDGE_CLUSTER_NAME`). Each instance is ready when its
//! `GET /status` shows Redis reached and its mirror of the log loaded
//! (`/readyz` also needs a runtime online, so it cannot say that).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::HttpConn;
use crate::options::Args;
use crate::redis::RedisServer;
use crate::target::{Bridge, Launch, Target};
use crate::tokens::Tokens;

/// Cluster names handed out so far in this process.
static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// Redis and its bridge instances.
pub struct Cluster {
    pub redis: RedisServer,
    pub instances: Vec<Bridge>,
    pub name: String,
}

impl Cluster {
    /// Starts a Redis and `n` instances on it; `ttl` sets `LETTA_BRIDGE_NODE_TTL`
    /// (the bridge's default of 15 s when `None`).
    pub async fn start(args: &Args, work: &Path, n: usize, ttl: Option<Duration>) -> anyhow::Result<Self> {
        let binary = args.spawn.as_ref().context("cluster scenarios need --spawn (they start the instances)")?;
        let k = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let name = format!("bench-{}-{k}", std::process::id());
        let redis = RedisServer::start(&args.redis_server, &work.join(format!("redis-{k}"))).await?;
        let tokens = Tokens::generate()?;
        let mut cluster = Cluster { redis, instances: Vec::with_capacity(n), name };
        for i in 0..n {
            let mut launch = Launch::new(binary, args);
            launch.tokens = Some(tokens.clone());
            let mut env = vec![
                ("LETTA_BRIDGE_CLUSTER_URL".to_owned(), cluster.redis.url()),
                ("LETTA_BRIDGE_CLUSTER_NAME".to_owned(), cluster.name.clone()),
                ("LETTA_BRIDGE_NODE_ID".to_owned(), node_id(i)),
            ];
            if let Some(ttl) = ttl {
                env.push(("LETTA_BRIDGE_NODE_TTL".to_owned(), format!("{}ms", ttl.as_millis())));
            }
            // The harness's settings first, so that --bridge-env cannot
            // point an instance at another Redis by accident.
            env.extend(launch.extra_env.drain(..).filter(|(k, _)| !env_is_cluster(k)));
            launch.extra_env = env;
            let started = async {
                let b = Bridge::spawn(&launch, args, work).await?;
                if let Err(e) = wait_joined(&b.target, Duration::from_secs(10)).await {
                    let log = b.log_tail();
                    let _ = b.stop(Duration::from_secs(5)).await;
                    return Err(e.context(log));
                }
                anyhow::Ok(b)
            };
            match started.await {
                Ok(b) => cluster.instances.push(b),
                Err(e) => {
                    cluster.stop().await;
                    return Err(e.context(format!("starting cluster instance {}", node_id(i))));
                }
            }
        }
        Ok(cluster)
    }

    /// Instance `i`'s target (`a` is 0).
    pub fn target(&self, i: usize) -> &Target {
        &self.instances[i].target
    }

    /// The pids of the instances.
    pub fn pids(&self) -> Vec<u32> {
        self.instances.iter().map(|b| b.pid).collect()
    }

    /// Stops every instance (SIGTERM), then Redis.
    pub async fn stop(self) {
        for b in self.instances {
            let log = b.log.clone();
            if let Err(e) = b.stop(Duration::from_secs(15)).await {
                eprintln!("   stopping a cluster instance: {e:#} (log {})", log.display());
            }
        }
        self.redis.stop().await;
    }
}

fn env_is_cluster(key: &str) -> bool {
    matches!(
        key,
        "LETTA_BRIDGE_CLUSTER_URL" | "LETTA_BRIDGE_CLUSTER_NAME" | "LETTA_BRIDGE_NODE_ID" | "LETTA_BRIDGE_NODE_TTL"
    )
}

/// Waits until `GET /status` on `at` says Redis answers, the mirror is
/// loaded and the instance is not fenced.
async fn wait_joined(at: &Target, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut conn = HttpConn::connect(&at.addr).await?;
    loop {
        let r = conn.request("GET", &at.path("/status"), Some(&at.client_token), None).await?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let c = &v["cluster"];
        if r.status == 200 && c["engine"] == "ok" && c["mirror_loaded"] == true && c["fenced"] == false {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not join its cluster within {timeout:?}: GET /status answered {} {}",
                at.addr,
                r.status,
                r.text()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `a`, `b`, `c`, …
pub fn node_id(i: usize) -> String {
    ((b'a' + (i % 26) as u8) as char).to_string()
}

/// `target` with its direct-mode runtime URL naming `device`.
pub fn as_device(target: &Target, device: &str) -> Target {
    let mut t = target.clone();
    t.ws_url = format!("ws://{}{}/ws?deviceId={device}", t.addr, t.base);
    t
}

/// Waits until `GET /runtimes` on `at` shows `device` online (`true`) or
/// not listed online (`false`): that instance's mirror has read the
/// runtime's `runtime_online` / `runtime_offline`.
pub async fn wait_runtime(at: &Target, device: &str, online: bool, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut conn = HttpConn::connect(&at.addr).await?;
    loop {
        let r = conn.request("GET", &at.path("/runtimes"), Some(&at.client_token), None).await?;
        if r.status != 200 {
            bail!("GET /runtimes answered {}: {}", r.status, r.text());
        }
        let list: serde_json::Value = serde_json::from_slice(&r.body).context("GET /runtimes is not JSON")?;
        let is_online = list
            .as_array()
            .is_some_and(|l| l.iter().any(|rt| rt["id"] == device && rt["online"] == serde_json::Value::Bool(true)));
        if is_online == online {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not list runtime {device} as {} within {timeout:?}",
                at.addr,
                if online { "online" } else { "offline" }
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
