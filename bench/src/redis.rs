//! The Redis a cluster case runs on: a `redis-server` this harness starts in
//! a directory of its own, listening only on a Unix socket (no TCP port, so
//! it cannot collide with anyone's Redis), with persistence off
//! (`--save '' --appendonly no`), and stopped with SIGTERM when the case ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::target::terminate;

/// A running `redis-server`.
pub struct RedisServer {
    child: tokio::process::Child,
    pub pid: u32,
    pub socket: PathBuf,
    pub log: PathBuf,
}

/// `redis-server --version`'s `v=…`, or why there is no usable redis-server.
pub fn version(binary: &Path) -> anyhow::Result<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("redis-server not found or not runnable ({})", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("v=")).map(str::to_owned);
    match v {
        Some(v) if out.status.success() => Ok(v),
        _ => bail!("{} --version answered {:?}", binary.display(), text.trim()),
    }
}

impl RedisServer {
    /// Starts `binary` in `dir` (created) and waits until it answers `PING`.
    pub async fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("redis.sock");
        let log = dir.join("redis.log");
        let _ = std::fs::remove_file(&socket);
        let child = tokio::process::Command::new(binary)
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("no pid")?;
        let mut server = Self { child, pid, socket, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("redis-server exited at start ({status}); log {}", server.log.display());
            }
            if server.ping().await.unwrap_or(false) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING within 10 s; log {}", server.log.display());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn ping(&self) -> anyhow::Result<bool> {
        let mut s = UnixStream::connect(&self.socket).await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await??;
        Ok(buf[..n].starts_with(b"+PONG"))
    }

    /// The URL the bridges are given.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// SIGTERM, then waits (SIGKILL after 10 s).
    pub async fn stop(mut self) {
        terminate(self.pid);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}
