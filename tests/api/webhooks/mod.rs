//! Webhooks (`POST /webhooks` and the rest): deliveries to a real receiver
//! that verifies every signature with the `standardwebhooks` package from
//! PyPI (receiver.py, run with .ci/cache/venv's Python), retries after
//! `500`s, `410` disabling a hook, order kept, redelivery, the SSRF guard,
//! and who may make hooks and what they read. The retry schedule is made
//! short through the config.

mod delivery;
mod guard;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use letta_bridge_testkit::process::Guarded;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use crate::helpers::*;

/// How long a test waits for a delivery.
pub const WAIT: Duration = Duration::from_secs(10);

/// A bridge whose hooks may reach loopback receivers and retry at once.
pub async fn spawn_hooks() -> TestApp {
    spawn_app_with(|c| {
        c.webhook_allow = vec!["127.0.0.1".into(), "::1".into()];
        c.webhook_schedule = Some(vec![Duration::from_millis(20); 3]);
    })
    .await
}

/// The receiver: a Python process verifying deliveries with `standardwebhooks`.
pub struct Receiver {
    _process: Guarded,
    lines: mpsc::UnboundedReceiver<Value>,
    secret_file: std::path::PathBuf,
    /// `http://host:port/hook`.
    pub url: String,
}

impl Receiver {
    /// Starts one on `host`, answering `answers` (then `200`).
    pub async fn start(host: &str, answers: &[u16]) -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        let python = format!("{root}/.ci/cache/venv/bin/python");
        assert!(
            std::path::Path::new(&python).exists(),
            "{python} is missing: run .ci/test once (it installs .ci/requirements.txt)"
        );
        let secret_file = std::env::temp_dir().join(format!("wh-secret-{}", uuid_like()));
        std::fs::write(&secret_file, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let answers = answers.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let script = format!("{root}/tests/api/webhooks/receiver.py");
        let mut cmd = Guarded::command(&python, &[&script, host, secret_file.to_str().unwrap(), &answers]);
        cmd.stdout(Stdio::piped());
        let mut process = Guarded::spawn(cmd).expect("start the receiver");
        let stdout = process.child_mut().stdout.take().unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str::<Value>(&line).expect("JSON lines")).is_err() {
                    return;
                }
            }
        });
        let first = tokio::time::timeout(WAIT, lines.recv()).await.expect("the receiver starts in time");
        let port = first.expect("the receiver prints its port")["port"].as_u64().unwrap();
        let authority = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        Self { _process: process, lines, secret_file, url: format!("http://{authority}:{port}/hook") }
    }

    /// Makes the receiver verify with `hook`'s secret.
    pub fn trust(&self, hook: &Value) {
        std::fs::write(&self.secret_file, hook["secret"].as_str().expect("a secret")).unwrap();
    }

    /// The next delivery the receiver got (any attempt), checked verified.
    pub async fn next(&mut self) -> Value {
        let line =
            tokio::time::timeout(WAIT, self.lines.recv()).await.expect("a delivery in time").expect("receiver alive");
        assert_eq!(line["verified"], true, "standardwebhooks verifies the signature: {line}");
        line
    }

    /// True when nothing arrives within `quiet`.
    pub async fn quiet(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, self.lines.recv()).await.is_err()
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

/// Makes a hook with `token`; expects `201`, and has `receiver` trust its secret.
pub async fn make(app: &TestApp, token: &str, receiver: &Receiver, events: Value, filter: Value) -> Value {
    let res =
        app.post_as(Some(token), "/webhooks", json!({"url": receiver.url, "events": events, "filter": filter})).await;
    assert_eq!(res.status(), 201, "POST /webhooks");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let hook: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/webhooks/{}", hook["id"].as_str().unwrap()), "Location names what DELETE takes");
    receiver.trust(&hook);
    hook
}

/// `GET /webhooks/{id}/deliveries` as the admin.
pub async fn deliveries(app: &TestApp, hook: &Value) -> Vec<Value> {
    let res = app.get_as(Some(ADMIN_TOKEN), &format!("/webhooks/{}/deliveries", hook["id"].as_str().unwrap())).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The hook as `GET /webhooks` lists it.
pub async fn listed(app: &TestApp, hook: &Value) -> Value {
    let res = app.get_as(Some(ADMIN_TOKEN), "/webhooks").await;
    let hooks: Vec<Value> = res.json().await.unwrap();
    hooks.into_iter().find(|h| h["id"] == hook["id"]).expect("listed")
}

/// Polls `check` (of `GET` answers) until it holds, within [`WAIT`].
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
