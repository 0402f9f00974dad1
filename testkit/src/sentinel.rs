//! Redis that fails over: a primary, a replica and three Sentinels
//! (Debian's `redis-server`, the Sentinels as `redis-server --sentinel`) on
//! free loopback TCP ports, as child processes in a folder of their own,
//! set to notice a lost primary within a second and promote the replica.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::process::Guarded;
use crate::redis::RedisServer;

/// The master name the Sentinels watch.
pub const MASTER: &str = "lbmaster";

/// How long a Sentinel waits before it calls the primary down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// How long a process may take to answer its first PING.
const START: Duration = Duration::from_secs(10);

/// A primary, its replica and three Sentinels.
pub struct SentinelSet {
    /// The Redis nodes: `[0]` starts as the primary, `[1]` as its replica.
    pub nodes: Vec<Node>,
    /// The Sentinels' ports.
    pub sentinels: Vec<u16>,
    processes: Vec<Guarded>,
}

/// One Redis node.
pub struct Node {
    /// Its port on 127.0.0.1.
    pub port: u16,
    process: Option<Guarded>,
}

impl SentinelSet {
    /// Starts the set in `dir` (created if missing); `None` without `redis-server`.
    pub fn start(dir: &Path) -> Option<Self> {
        let program = RedisServer::program()?;
        std::fs::create_dir_all(dir).expect("sentinel folder");
        let primary = free_port();
        let mut nodes = Vec::new();
        for (i, replica_of) in [(0, None), (1, Some(primary))] {
            let port = if i == 0 { primary } else { free_port() };
            let node_dir = dir.join(format!("redis-{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let (port_s, log) = (port.to_string(), node_dir.join("redis.log"));
            let mut args = vec![
                "--port",
                &port_s,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                "noeviction",
                // A replica's first sync starts at once (Redis waits 5 s by default).
                "--repl-diskless-sync-delay",
                "0",
                "--dir",
                node_dir.to_str().unwrap(),
                "--logfile",
                log.to_str().unwrap(),
            ];
            let of = replica_of.map(|p| p.to_string());
            if let Some(of) = &of {
                args.extend(["--replicaof", "127.0.0.1", of]);
            }
            let process = spawn(&program, &args);
            wait_ping(port, &log);
            nodes.push(Node { port, process: Some(process) });
        }
        let mut set = Self { nodes, sentinels: Vec::new(), processes: Vec::new() };
        set.wait_replica_in_sync();
        for i in 0..3 {
            let port = free_port();
            let config = dir.join(format!("sentinel-{i}.conf"));
            let log = dir.join(format!("sentinel-{i}.log"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER} 3000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir = dir.display(),
                log = log.display(),
            );
            std::fs::write(&config, text).unwrap();
            set.processes.push(spawn(&program, &[config.to_str().unwrap(), "--sentinel"]));
            wait_ping(port, &log);
            set.sentinels.push(port);
        }
        set.wait_sentinels_know_the_replica();
        Some(set)
    }

    /// The bridge's `LETTA_BRIDGE_CLUSTER_URL`.
    pub fn url(&self) -> String {
        let hosts: Vec<_> = self.sentinels.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].process.take() {
            p.kill();
        }
    }

    /// Runs one command on node `i` (RESP, inline form) and returns the raw reply.
    pub fn command(&self, i: usize, line: &str) -> String {
        command(self.nodes[i].port, line)
    }

    /// Runs one command on Sentinel `i`.
    pub fn ask_sentinel(&self, i: usize, line: &str) -> String {
        command(self.sentinels[i], line)
    }

    /// The primary's port as Sentinel 0 names it.
    pub fn primary_port(&self) -> Option<u16> {
        let reply = self.ask_sentinel(0, &format!("SENTINEL get-master-addr-by-name {MASTER}"));
        reply.lines().filter(|l| !l.starts_with(['*', '$'])).nth(1)?.parse().ok()
    }

    fn wait_replica_in_sync(&self) {
        poll("the replica to sync", || self.command(1, "INFO replication").contains("master_link_status:up"));
    }

    fn wait_sentinels_know_the_replica(&self) {
        for i in 0..self.sentinels.len() {
            poll("the Sentinels to find the replica and each other", || {
                let master = self.ask_sentinel(i, &format!("SENTINEL master {MASTER}"));
                field(&master, "num-slaves") == Some("1") && field(&master, "num-other-sentinels") == Some("2")
            });
        }
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for p in &mut self.processes {
            p.kill();
        }
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// The value after `name` in a flat RESP array of names and values.
fn field<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = reply.lines().filter(|l| !l.starts_with(['*', '$']));
    lines.by_ref().find(|l| *l == name)?;
    lines.next()
}

fn spawn(program: &Path, args: &[&str]) -> Guarded {
    let mut cmd = Guarded::command(program, args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Guarded::spawn(cmd).expect("redis-server starts")
}

/// A port nothing listens on now (the OS's choice for port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Another process's state is not an event we can await: poll, bounded.
fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + START;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn wait_ping(port: u16, log: &Path) {
    let log: PathBuf = log.to_owned();
    poll(&format!("redis on port {port} (log: {})", log.display()), || command(port, "PING").starts_with("+PONG"));
}

/// One inline command on `127.0.0.1:port`; "" when nothing answers.
fn command(port: u16, line: &str) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("{line}\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let (mut reply, mut chunk) = (Vec::new(), [0; 1 << 14]);
    while resp_end(&reply, 0).is_none() {
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => reply.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// Where the RESP2 value starting at `at` ends, once `buf` holds all of it.
fn resp_end(buf: &[u8], at: usize) -> Option<usize> {
    let line_end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    let after = line_end + 2;
    let number = || std::str::from_utf8(&buf[at + 1..line_end]).ok()?.parse::<i64>().ok();
    match buf[at] {
        b'$' => match number()? {
            n if n < 0 => Some(after),
            n => Some(after + n as usize + 2).filter(|end| *end <= buf.len()),
        },
        b'*' => (0..number()?.max(0)).try_fold(after, |next, _| resp_end(buf, next)),
        _ => Some(after),
    }
}
