//! The webhook receiver of the tests (tests/api and tests/cluster): a
//! Python process (receiver.py) verifying every delivery with the
//! `standardwebhooks` package from PyPI, run with .ci/cache/venv's Python.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use letta_bridge_testkit::process::Guarded;
use serde_json::Value;
use tokio::sync::mpsc;

/// How long the receiver waits for a delivery.
const WAIT: Duration = Duration::from_secs(10);

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
