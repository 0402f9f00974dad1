//! The bridge binary as a child process with fixed tokens on 127.0.0.1:0
//! (its port read from its log), an HTTP client for its API, and its
//! `GET /events` as an [`Sse`] reader. The caller names the binary
//! (`env!("CARGO_BIN_EXE_letta-bridge")`): the kit does not build it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::letta::tail;
use crate::process::Guarded;
use crate::sse::Sse;

pub const RUNTIME_TOKEN: &str = "live-runtime-token-000000001";
pub const CLIENT_TOKEN: &str = "live-client-token-0000000001";
pub const ADMIN_TOKEN: &str = "live-admin-token-00000000001";

/// `cmd` without the caller's `LETTA_BRIDGE_*` and `OTEL_*` settings, so
/// that only what a test sets reaches the bridge.
pub fn without_bridge_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("LETTA_BRIDGE_") || key_text.starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The listening address from a line of the bridge's text log
/// (`… listening addr=127.0.0.1:PORT …`).
pub fn logged_addr(line: &str) -> Option<&str> {
    line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next())
}

/// A running bridge; stopped (SIGTERM) on `Drop`.
pub struct BridgeProcess {
    pub addr: SocketAddr,
    /// Its stderr (the log).
    pub log_path: PathBuf,
    pub http: reqwest::Client,
    process: Guarded,
}

impl BridgeProcess {
    /// Starts the bridge binary `bin` with the tokens above and `args`, logging
    /// to `log_path`; returns once it listens.
    pub fn start(bin: impl AsRef<OsStr>, log_path: PathBuf, args: &[&str]) -> Self {
        Self::start_listening(bin, log_path, "127.0.0.1:0", args)
    }

    /// As [`BridgeProcess::start`], listening on `listen` (e.g. the address a
    /// stopped instance had, so that a balancer's upstream finds it again).
    pub fn start_listening(bin: impl AsRef<OsStr>, log_path: PathBuf, listen: &str, args: &[&str]) -> Self {
        Self::start_listening_with_env(bin, log_path, listen, args, &[])
    }

    /// As [`BridgeProcess::start_listening`], with these environment
    /// variables set (after the defaults, e.g. `RUST_LOG`).
    pub fn start_listening_with_env(
        bin: impl AsRef<OsStr>,
        log_path: PathBuf,
        listen: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut all = vec!["--listen", listen];
        all.extend_from_slice(args);
        let mut cmd = Guarded::command(bin, &all);
        Self::defaults(&mut cmd);
        for (key, value) in env {
            cmd.env(key, value);
        }
        Self::started(cmd, log_path)
    }

    /// As [`BridgeProcess::start`], with the open-file limit (soft and hard)
    /// set to `files` (util-linux's `prlimit`), so that a test can run the
    /// bridge out of descriptors.
    pub fn start_with_open_files(bin: impl AsRef<OsStr>, log_path: PathBuf, args: &[&str], files: u64) -> Self {
        let limit = format!("--nofile={files}:{files}");
        let bin = bin.as_ref().to_str().expect("the binary's path is UTF-8");
        let mut all = vec![limit.as_str(), bin, "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Self::spawn(Guarded::command("prlimit", &all), log_path)
    }

    /// As [`BridgeProcess::start`], with these environment variables set
    /// (after the defaults, e.g. `RUST_LOG`).
    pub fn start_with_env(bin: impl AsRef<OsStr>, log_path: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_listening_with_env(bin, log_path, "127.0.0.1:0", args, env)
    }

    fn spawn(mut cmd: Command, log_path: PathBuf) -> Self {
        Self::defaults(&mut cmd);
        Self::started(cmd, log_path)
    }

    /// The fixed tokens, the log level and the standard streams.
    fn defaults(cmd: &mut Command) {
        without_bridge_env(cmd)
            .env("LETTA_BRIDGE_RUNTIME_TOKEN", RUNTIME_TOKEN)
            .env("LETTA_BRIDGE_CLIENT_TOKEN", CLIENT_TOKEN)
            .env("LETTA_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info,letta_bridge=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
    }

    fn started(cmd: Command, log_path: PathBuf) -> Self {
        let mut process = Guarded::spawn(cmd).expect("the bridge starts");
        let stderr = process.child_mut().stderr.take().unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let mut log = std::fs::File::create(&log_path).expect("bridge log file");
        // Copies the log to the file and reports the bound address once.
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if let Some(addr) = logged_addr(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the bridge did not report its address; log: {}", log_path.display()));
        let addr = addr.parse().expect("the logged address parses");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { addr, log_path, http, process }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Kills it (SIGKILL): no shutdown, no goodbye.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// POSTs JSON with `token`.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    /// POSTs JSON with the client token.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_as(CLIENT_TOKEN, path, body).await
    }

    /// GETs JSON with the client token; asserts success.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.http.get(self.url(path)).bearer_auth(CLIENT_TOKEN).send().await.expect("request sent");
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// Opens `GET /events{query}` with the client token.
    pub async fn events(&self, query: &str) -> Sse {
        Sse::open(self.http.get(self.url(&format!("/events{query}"))).bearer_auth(CLIENT_TOKEN)).await
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- bridge log ({}), last lines:\n{}", self.log_path.display(), tail(&self.log(), 40));
        }
    }
}
