//! The bridge under test: its addresses and tokens ([`Target`]), either given
//! by URL options or belonging to a bridge this harness spawned ([`Bridge`]:
//! free port, generated tokens, log file, an RSS ceiling, graceful stop with
//! SIGTERM). The peer of `--peer` is spawned the same way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::HttpConn;
use crate::options::Args;
use crate::peer::{self, Peer};
use crate::procfs;
use crate::side::Side;
use crate::tokens::Tokens;

/// Where and how to reach a bridge.
#[derive(Debug, Clone)]
pub struct Target {
    /// host:port of the plain-HTTP listener.
    pub addr: String,
    /// Path prefix of the HTTP API ("" for none), without a trailing slash.
    pub base: String,
    /// Direct-mode runtime WebSocket URL.
    pub ws_url: String,
    pub runtime_token: String,
    pub client_token: String,
    /// Registration mode for the fake runtime.
    pub register: bool,
}

impl Target {
    /// The target named by the URL options.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        let Some(rest) = args.http_url.strip_prefix("http://") else {
            bail!("--http-url must be a plain http:// URL (the harness speaks raw HTTP/1.1 over TCP)");
        };
        let (addr, base) = rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b));
        let base = if base.is_empty() { String::new() } else { format!("/{}", base.trim_end_matches('/')) };
        let ws_url = args.ws_url.clone().unwrap_or_else(|| format!("ws://{addr}{base}/ws?deviceId=bench"));
        Ok(Self {
            addr: addr.to_owned(),
            base,
            ws_url,
            runtime_token: args.runtime_token.clone(),
            client_token: args.client_token.clone(),
            register: args.register,
        })
    }

    /// `path` under the API's base path.
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A bridge process this harness started.
pub struct Bridge {
    child: tokio::process::Child,
    pub pid: u32,
    pub target: Target,
    pub log: PathBuf,
    /// Kills the process if its RSS passes `--rss-limit`.
    watchdog: tokio::task::JoinHandle<()>,
    /// Set when the watchdog killed it.
    killed: Arc<AtomicBool>,
}

/// How to start a bridge.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    /// Runs the binary under this command (e.g. valgrind and its options).
    pub wrapper: Vec<OsString>,
    pub extra_env: Vec<(String, String)>,
    /// How long to wait for `GET /healthz` to answer 200.
    pub ready_timeout: Duration,
    /// The tokens to start with; fresh ones when `None`.
    pub tokens: Option<Tokens>,
    /// The bridge, or the peer (which takes its port and tokens under other names).
    pub side: Side,
    /// RSS above which the process is killed, bytes.
    pub rss_limit: u64,
}

impl Launch {
    pub fn new(binary: &Path, args: &Args) -> Launch {
        let extra_env = args.bridge_env.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into()));
        Launch {
            binary: binary.to_owned(),
            wrapper: Vec::new(),
            extra_env: extra_env.collect(),
            ready_timeout: Duration::from_secs(10),
            tokens: None,
            side: Side::Ours,
            rss_limit: rss_limit(args),
        }
    }

    /// The peer (`--bridge-env` is the bridge's and does not apply).
    pub fn peer(peer: &Peer, args: &Args) -> Launch {
        Launch {
            binary: peer.path.clone(),
            wrapper: peer.wrapper(),
            extra_env: Vec::new(),
            ready_timeout: Duration::from_secs(10),
            tokens: None,
            side: Side::Peer,
            rss_limit: rss_limit(args),
        }
    }

    /// The command that starts this program on `addr` with `tokens`.
    pub fn command(&self, addr: &str, tokens: &Tokens) -> std::process::Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = std::process::Command::new(program);
                c.args(rest).arg(&self.binary);
                c
            }
            None => std::process::Command::new(&self.binary),
        };
        cmd.envs(peer::env(self.side, addr, tokens)).envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

fn rss_limit(args: &Args) -> u64 {
    (args.rss_limit * 1e6) as u64
}

impl Bridge {
    /// Starts the bridge on a free loopback port with fresh (or the given)
    /// tokens and waits until `GET /healthz` answers 200.
    pub async fn spawn(launch: &Launch, args: &Args, log_dir: &Path) -> anyhow::Result<Bridge> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let tokens = match &launch.tokens {
            Some(t) => t.clone(),
            None => Tokens::generate()?,
        };
        std::fs::create_dir_all(log_dir)?;
        let what = match launch.side {
            Side::Ours => "bridge",
            Side::Peer => "peer",
        };
        let log = log_dir.join(format!("{what}-{port}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = tokio::process::Command::from(launch.command(&addr, &tokens));
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("cannot start {}", launch.binary.display()))?;
        let pid = child.id().context("no pid")?;
        let killed = Arc::new(AtomicBool::new(false));
        let watchdog = tokio::spawn(watch_rss(pid, launch.rss_limit, log.clone(), killed.clone()));
        let target = Target {
            ws_url: format!("ws://{addr}/ws?deviceId=bench"),
            addr,
            base: String::new(),
            runtime_token: tokens.runtime,
            client_token: tokens.client,
            register: args.register,
        };
        let mut bridge = Bridge { child, pid, target, log, watchdog, killed };
        bridge.wait_healthy(launch.ready_timeout).await?;
        Ok(bridge)
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the bridge exited during start-up ({status}); log {}:\n{}", self.log.display(), self.log_tail());
            }
            if let Ok(mut conn) = HttpConn::connect(&self.target.addr).await
                && let Ok(Ok(r)) = tokio::time::timeout(timeout, conn.request("GET", "/healthz", None, None)).await
                && r.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no 200 from GET /healthz within {timeout:?}; log {}:\n{}", self.log.display(), self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Why a measurement against this process failed, when the RSS
    /// watchdog killed it.
    pub fn killed_for_rss(&self) -> Option<String> {
        self.killed
            .load(Ordering::Relaxed)
            .then(|| format!("killed when its RSS passed --rss-limit (log {})", self.log.display()))
    }

    /// The last lines of the bridge's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after that).
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.watchdog.abort();
        terminate(self.pid);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                bail!("the bridge did not exit within {grace:?} of SIGTERM; killed");
            }
        }
    }

    /// SIGKILL (no clean shutdown: a crashed instance), then reaps the process.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.watchdog.abort();
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

/// How often the watchdog reads a spawned process's RSS.
const RSS_WATCH: Duration = Duration::from_millis(200);

/// Kills `pid` (SIGKILL) if its RSS passes `limit`, saying so in its log and
/// on stderr: a target without limits (the peer's buffers grow without
/// bound under a slow reader) must not take the shared machine down.
async fn watch_rss(pid: u32, limit: u64, log: PathBuf, killed: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(RSS_WATCH);
    loop {
        tick.tick().await;
        let Ok(rss) = procfs::rss(pid) else { return };
        if rss > limit {
            let line = format!(
                "bench: killed pid {pid}: RSS {:.0} MB passed --rss-limit {:.0} MB",
                rss as f64 / 1e6,
                limit as f64 / 1e6
            );
            eprintln!("   {line}");
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
                let _ = std::io::Write::write_all(&mut f, format!("\n{line}\n").as_bytes());
            }
            killed.store(true, Ordering::Relaxed);
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            return;
        }
    }
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Raises this process's soft open-file limit to its hard limit (children,
/// including spawned bridges, inherit it). Returns (soft, hard) after.
pub fn raise_nofile_limit() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (0, 0);
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// The bridge binary's `--version` line.
pub fn version_of(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown version".into())
}
