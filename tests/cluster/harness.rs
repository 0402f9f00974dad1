//! One cluster per test: a Redis in a temp folder, N bridge instances on it
//! (their own cluster name, a short lease), fake runtimes and SSE readers on
//! whichever instance a test names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use letta_bridge_testkit::bridge::{ADMIN_TOKEN, BridgeProcess, CLIENT_TOKEN, RUNTIME_TOKEN};
use letta_bridge_testkit::nginx::Nginx;
use letta_bridge_testkit::redis::RedisServer;
use letta_bridge_testkit::{FakeRuntime, Sse};
use serde_json::{Value, json};

/// How long any single expectation may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The lease of test instances: a lost one is noticed within about a second.
pub const NODE_TTL: &str = "1s";

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// A Redis and the bridge instances on it. Drops in order: bridges, Redis, folder.
pub struct Cluster {
    pub bridges: Vec<BridgeProcess>,
    pub redis: RedisServer,
    pub dir: TempDir,
    name: String,
    ttl: String,
    extra: Vec<String>,
    /// Environment variables every instance starts with.
    env: Vec<(String, String)>,
}

impl Cluster {
    /// `n` instances with the test lease; `None` (after `SKIPPED`) without redis-server.
    pub fn start(test: &str, n: usize) -> Option<Self> {
        Self::start_with(test, n, NODE_TTL, false)
    }

    /// `n` instances with lease `ttl` and `extra` command-line settings.
    pub fn start_args(test: &str, n: usize, ttl: &str, extra: &[&str]) -> Option<Self> {
        Self::start_full(test, n, ttl, false, extra, Vec::new())
    }

    /// `n` instances with lease `ttl`, on a Redis that keeps its data when
    /// killed (`persistent`) or not.
    pub fn start_with(test: &str, n: usize, ttl: &str, persistent: bool) -> Option<Self> {
        Self::start_full(test, n, ttl, persistent, &[], Vec::new())
    }

    /// `n` instances with the test lease and these environment variables.
    pub fn start_env(test: &str, n: usize, env: &[(&str, &str)]) -> Option<Self> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::start_full(test, n, NODE_TTL, false, &[], env)
    }

    fn start_full(
        test: &str,
        n: usize,
        ttl: &str,
        persistent: bool,
        extra: &[&str],
        env: Vec<(String, String)>,
    ) -> Option<Self> {
        if RedisServer::program().is_none() {
            skip(test, "redis-server");
            return None;
        }
        let dir = TempDir::new(test);
        let redis = RedisServer::start(&dir.path.join("redis"), persistent);
        let name = format!("t{}", std::process::id() ^ (dir.path.as_os_str().len() as u32));
        let extra = extra.iter().map(|a| a.to_string()).collect();
        let mut cluster = Self { bridges: Vec::new(), redis, dir, name, ttl: ttl.to_owned(), extra, env };
        for i in 1..=n {
            cluster.add(i);
        }
        Some(cluster)
    }

    /// Starts instance `i` (1-based) with node id `n<i>`.
    pub fn add(&mut self, i: usize) {
        let log = self.dir.path.join(format!("bridge-{i}-{}.log", self.bridges.len()));
        let args = self.args(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let bridge = BridgeProcess::start_listening_with_env(BIN, log, "127.0.0.1:0", &args, &self.env());
        if i <= self.bridges.len() {
            self.bridges[i - 1] = bridge;
        } else {
            self.bridges.push(bridge);
        }
    }

    /// Stops instance `i` (SIGTERM; returns once it has exited) and starts it
    /// again with the same node id and settings on the same address, as a
    /// rolling deploy does. Blocks the calling thread for the stop.
    pub fn restart(&mut self, i: usize) {
        let addr = self.at(i).addr.to_string();
        self.bridges[i - 1].stop();
        let log = self.dir.path.join(format!("bridge-{i}-restarted-{}.log", uuid()));
        let args = self.args(i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.bridges[i - 1] = BridgeProcess::start_listening_with_env(BIN, log, &addr, &args, &self.env());
    }

    /// The instances' environment variables, as the kit takes them.
    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// Instance `i`'s command line after `--listen`.
    fn args(&self, i: usize) -> Vec<String> {
        let mut args: Vec<String> = [
            "--cluster-url",
            &self.redis.url(),
            "--cluster-name",
            &self.name,
            "--node-id",
            &format!("n{i}"),
            "--node-ttl",
            &self.ttl,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(self.extra.iter().cloned());
        args
    }

    /// The full name of one of the cluster's Redis keys (e.g. `meta`).
    pub fn key(&self, name: &str) -> String {
        format!("lb:{{{}}}:{name}", self.name)
    }

    /// Instance `i` (1-based).
    pub fn at(&self, i: usize) -> &BridgeProcess {
        &self.bridges[i - 1]
    }

    /// A fake runtime connected (directly, no registration) to instance `i`.
    pub async fn runtime(&self, i: usize, device: &str) -> FakeRuntime {
        let url = format!("ws://{}/ws?deviceId={device}", self.at(i).addr);
        FakeRuntime::connect_ready(&url, RUNTIME_TOKEN).await
    }

    /// `GET /events{query}` on instance `i`.
    pub async fn events(&self, i: usize, query: &str) -> Sse {
        self.at(i).events(query).await.waiting(WAIT)
    }

    /// nginx from the repository's config (the README's recipe) in front of every instance.
    pub fn balancer(&self, test: &str) -> Option<Nginx> {
        if Nginx::program().is_none() {
            skip(test, "nginx");
            return None;
        }
        let upstreams: Vec<_> = self.bridges.iter().map(|b| b.addr).collect();
        Some(Nginx::start(&nginx_config(), &self.dir.path.join("nginx"), &upstreams))
    }
}

/// Reads each stream until it shows `device` online.
pub async fn online_on(streams: &mut [&mut Sse], device: &str) {
    for sse in streams.iter_mut() {
        sse.next_matching("runtime_online", |e| e.event == "runtime_online" && e.data["runtime_id"] == device).await;
    }
}

/// A conversation command's body.
pub fn input(text: &str) -> Value {
    json!({"runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
           "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}})
}

/// The admin token (privileged commands).
pub fn admin() -> &'static str {
    ADMIN_TOKEN
}

/// A client token's request builder.
pub fn authed(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.bearer_auth(CLIENT_TOKEN)
}

/// The repository's nginx config, the one the README's recipe runs.
pub fn nginx_config() -> PathBuf {
    repo().join("deploy/nginx/letta-bridge.conf")
}

/// The checkout.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Says why a test does nothing (and fails instead when `CI` is set).
pub fn skip(test: &str, what: &str) {
    assert!(std::env::var_os("CI").is_none(), "{test}: {what} is not installed (CI must install it: .ci/test)");
    eprintln!("SKIPPED {test}: {what} is not installed");
}

/// A temp folder, removed unless the test failed.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("lb-cluster-{test}-{}", uuid()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the cluster's logs in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn uuid() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}-{}", nanos, std::process::id())
}
