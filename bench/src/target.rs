//! The bridge under test: its addresses and tokens ([`Target`]), either given
//! by URL options or belonging to a bridge this harness spawned ([`Bridge`]:
//! free port, generated tokens, log file, graceful stop with SIGTERM).

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http::HttpConn;
use crate::options::Args;

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
}

/// The bearer tokens of a bridge (the instances of one cluster share them).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub runtime: String,
    pub client: String,
    pub admin: String,
}

impl Tokens {
    /// Fresh random tokens.
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self { runtime: token()?, client: token()?, admin: token()? })
    }
}

/// How to start a bridge.
pub struct Launch<'a> {
    pub binary: &'a Path,
    /// Runs the binary under this command (e.g. valgrind and its options).
    pub wrapper: Vec<OsString>,
    pub extra_env: Vec<(String, String)>,
    /// How long to wait for `GET /healthz` to answer 200.
    pub ready_timeout: Duration,
    /// The tokens to start with; fresh ones when `None`.
    pub tokens: Option<Tokens>,
}

impl Launch<'_> {
    pub fn new<'a>(binary: &'a Path, args: &Args) -> Launch<'a> {
        let extra_env = args.bridge_env.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into()));
        Launch {
            binary,
            wrapper: Vec::new(),
            extra_env: extra_env.collect(),
            ready_timeout: Duration::from_secs(10),
            tokens: None,
        }
    }
}

impl Bridge {
    /// Starts the bridge on a free loopback port with fresh (or the given)
    /// tokens and waits until `GET /healthz` answers 200.
    pub async fn spawn(launch: &Launch<'_>, args: &Args, log_dir: &Path) -> anyhow::Result<Bridge> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let tokens = match &launch.tokens {
            Some(t) => t.clone(),
            None => Tokens::generate()?,
        };
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("bridge-{port}.log"));
        let out = std::fs::File::create(&log)?;
        let mut cmd = match launch.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(launch.binary);
                c
            }
            None => tokio::process::Command::new(launch.binary),
        };
        cmd.env("LETTA_BRIDGE_LISTEN", &addr)
            .env("LETTA_BRIDGE_RUNTIME_TOKEN", &tokens.runtime)
            .env("LETTA_BRIDGE_CLIENT_TOKEN", &tokens.client)
            .env("LETTA_BRIDGE_ADMIN_TOKEN", &tokens.admin)
            .envs(launch.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("cannot start {}", launch.binary.display()))?;
        let pid = child.id().context("no pid")?;
        let target = Target {
            ws_url: format!("ws://{addr}/ws?deviceId=bench"),
            addr,
            base: String::new(),
            runtime_token: tokens.runtime,
            client_token: tokens.client,
            register: args.register,
        };
        let mut bridge = Bridge { child, pid, target, log };
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

    /// The last lines of the bridge's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after that).
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
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
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
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

/// 32 hex characters from the kernel's random source.
pub fn token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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
