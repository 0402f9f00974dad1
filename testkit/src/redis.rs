//! A real Redis (Debian's `redis-server`) as a child process on a Unix
//! socket in a folder of its own: never port 6379, never a shared instance.
//! It can be killed and started again on the same socket, with its data
//! (append-only file, fsync on every write) or without.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::process::Guarded;

/// How long Redis may take to answer its first PING.
const START: Duration = Duration::from_secs(10);

/// A running `redis-server`.
pub struct RedisServer {
    dir: PathBuf,
    persistent: bool,
    process: Option<Guarded>,
}

impl RedisServer {
    /// The server program: `$REDIS_SERVER`, else `redis-server` on the PATH.
    /// `None` when there is none.
    pub fn program() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("REDIS_SERVER").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join("redis-server")).find(|p| p.is_file())
    }

    /// Starts Redis in `dir` (created if missing); with `persistent`, every
    /// write is in its append-only file before it answers, so a restart keeps it.
    pub fn start(dir: &Path, persistent: bool) -> Self {
        std::fs::create_dir_all(dir).expect("redis folder");
        let mut server = Self { dir: dir.to_owned(), persistent, process: None };
        server.launch();
        server
    }

    /// The URL the bridge takes (`LETTA_BRIDGE_CLUSTER_URL`).
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Its Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Kills it (SIGKILL): what it wrote to its append-only file survives.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Kills it and starts it again with its data (when persistent).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Kills it, throws its data away and starts it again empty.
    pub fn restart_empty(&mut self) {
        self.kill();
        for file in ["appendonly.aof", "dump.rdb"] {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        let _ = std::fs::remove_dir_all(self.dir.join("appendonlydir"));
        self.launch();
    }

    /// Starts it again after [`RedisServer::kill`].
    pub fn launch(&mut self) {
        let program = Self::program().expect("redis-server is installed");
        let socket = self.socket();
        let log = self.dir.join("redis.log");
        let args = [
            "--port",
            "0",
            "--unixsocket",
            socket.to_str().unwrap(),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            if self.persistent { "yes" } else { "no" },
            "--appendfsync",
            "always",
            "--maxmemory-policy",
            "noeviction",
            "--dir",
            self.dir.to_str().unwrap(),
            "--logfile",
            log.to_str().unwrap(),
        ];
        let mut cmd = Guarded::command(program, &args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        self.process = Some(Guarded::spawn(cmd).expect("redis-server starts"));
        let deadline = Instant::now() + START;
        // Another process's readiness is not an event we can await: poll, bounded.
        while Instant::now() < deadline {
            if ping(&socket) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer on {} (log: {})", socket.display(), log.display());
    }

    /// Runs one command (RESP, inline form) and returns the raw reply.
    pub fn command(&self, line: &str) -> String {
        let mut s = UnixStream::connect(self.socket()).expect("redis socket");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut buf = vec![0; 1 << 16];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}
