//! The bridge binary as a child process with fixed tokens on 127.0.0.1:0
//! (its port read from its log), an HTTP client for its API, and an SSE
//! reader for `GET /events`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::process::Guarded;

pub const RUNTIME_TOKEN: &str = "live-runtime-token-000000001";
pub const CLIENT_TOKEN: &str = "live-client-token-0000000001";
pub const ADMIN_TOKEN: &str = "live-admin-token-00000000001";

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// A running bridge; stopped (SIGTERM) on `Drop`.
pub struct BridgeProcess {
    pub addr: SocketAddr,
    /// Its stderr (the log).
    pub log_path: PathBuf,
    pub http: reqwest::Client,
    process: Guarded,
}

impl BridgeProcess {
    /// Starts the bridge with the live tokens and `args`, logging to
    /// `log_path`; returns once it listens.
    pub fn start(log_path: PathBuf, args: &[&str]) -> Self {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut cmd = Guarded::command(BIN, &all);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LETTA_BRIDGE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("LETTA_BRIDGE_RUNTIME_TOKEN", RUNTIME_TOKEN)
            .env("LETTA_BRIDGE_CLIENT_TOKEN", CLIENT_TOKEN)
            .env("LETTA_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info,letta_bridge=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
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
                if let Some(addr) = line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next())
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
        let res =
            self.http.get(self.url(&format!("/events{query}"))).bearer_auth(CLIENT_TOKEN).send().await.expect("sent");
        assert_eq!(res.status(), 200, "GET /events{query}");
        Sse::new(res)
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- bridge log ({}), last lines:\n{}",
                self.log_path.display(),
                super::letta::tail(&self.log(), 40)
            );
        }
    }
}

/// One SSE event as a client sees it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// An SSE reader over a live `GET /events` response; keeps what it read.
pub struct Sse {
    stream: EventStream,
    /// Every event read so far, in order.
    pub seen: Vec<SseEvent>,
}

impl Sse {
    pub fn new(res: reqwest::Response) -> Self {
        use eventsource_stream::Eventsource;
        let stream = res.bytes_stream().eventsource().map(|r| r.map_err(|e| e.to_string()));
        Self { stream: Box::pin(stream), seen: Vec::new() }
    }

    /// The next event within `timeout`; panics if none comes or the stream ends.
    pub async fn next(&mut self, timeout: Duration) -> SseEvent {
        self.next_matching(timeout, "event", |_| true).await
    }

    /// The next event matching `pred` within `timeout` (overall), skipping others.
    pub async fn next_matching(&mut self, timeout: Duration, what: &str, pred: impl Fn(&SseEvent) -> bool) -> SseEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let item = tokio::time::timeout(left, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} in {timeout:?}; seen: {}", self.summary()));
            let e = item.expect("stream ended").expect("stream error");
            let data = serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("event data is JSON: {}", e.data));
            let event = SseEvent { id: e.id, event: e.event, data };
            self.seen.push(event.clone());
            if pred(&event) {
                return event;
            }
        }
    }

    /// The next event of type `kind` within `timeout`.
    pub async fn next_of(&mut self, kind: &str, timeout: Duration) -> SseEvent {
        self.next_matching(timeout, kind, |e| e.event == kind).await
    }

    /// Event types read so far, for failure messages.
    pub fn summary(&self) -> String {
        let names: Vec<String> = self
            .seen
            .iter()
            .map(|e| match e.data.get("request_id").and_then(Value::as_str) {
                Some(r) => format!("{}({r})", e.event),
                None => e.event.clone(),
            })
            .collect();
        format!("[{}]", names.join(", "))
    }
}
