//! The binary itself: token rules at start-up, `--help`, tokens and tickets
//! kept out of the log, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use letta_bridge_testkit::bridge::{logged_addr, without_bridge_env};

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// The binary, with none of the caller's `LETTA_BRIDGE_*` settings.
fn bridge() -> Command {
    let mut cmd = Command::new(BIN);
    without_bridge_env(&mut cmd);
    cmd
}

/// Spawns with stderr piped and a 30 s deadline for the blocking reads that
/// follow: past it the child is killed, its pipes close, and the reads fail
/// the test instead of hanging it.
fn spawn_with_deadline(cmd: &mut Command) -> std::process::Child {
    let child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        // Only if that pid is still a bridge (pids are reused once it exits).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("letta-bridge") {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    child
}

#[test]
fn a_non_loopback_bind_without_tokens_is_refused_before_binding() {
    let out = bridge().args(["--listen", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on non-loopback address"), "{stderr}");
}

#[test]
fn help_documents_every_setting_and_its_env_var() {
    let out = bridge().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "LETTA_BRIDGE_LISTEN",
        "LETTA_BRIDGE_RUNTIME_TOKEN",
        "LETTA_BRIDGE_CLIENT_TOKEN",
        "LETTA_BRIDGE_ADMIN_TOKEN",
        "LETTA_BRIDGE_PUBLIC_URL",
        "LETTA_BRIDGE_MAX_BODY_BYTES",
        "LETTA_BRIDGE_KEEPALIVE",
        "LETTA_BRIDGE_PING_INTERVAL",
        "LETTA_BRIDGE_MAX_MISSED_PONGS",
        "LETTA_BRIDGE_REPLAY_EVENTS",
        "LETTA_BRIDGE_LOG_FORMAT",
        "LETTA_BRIDGE_TLS_CERT",
        "LETTA_BRIDGE_TLS_KEY",
        "LETTA_BRIDGE_CORS_ORIGINS",
        "LETTA_BRIDGE_MAX_STREAM_DURATION",
        "LETTA_BRIDGE_MAX_FRAME_BYTES",
        "LETTA_BRIDGE_WAIT_TIMEOUT",
        "LETTA_BRIDGE_MAX_WAIT_TIMEOUT",
        "LETTA_BRIDGE_MAX_PENDING",
        "LETTA_BRIDGE_COMMAND_QUEUE",
        "LETTA_BRIDGE_REPLAY_BYTES",
        "LETTA_BRIDGE_REPLAY_MAX_AGE",
        "LETTA_BRIDGE_IDEMPOTENCY_WINDOW",
        "LETTA_BRIDGE_IDEMPOTENCY_KEYS",
        "LETTA_BRIDGE_SHUTDOWN_GRACE",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
}

#[tokio::test]
async fn generated_tokens_are_printed_once_never_logged_and_sigterm_stops_cleanly() {
    let mut cmd = bridge();
    cmd.args(["--listen", "127.0.0.1:0"]).env("RUST_LOG", "trace").stdout(Stdio::piped());
    let mut child = spawn_with_deadline(&mut cmd);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("letta remote") {
        assert!(stdout.read_line(&mut printed).unwrap() > 0, "stdout ended early: {printed}");
    }
    let token = |name: &str| {
        let line =
            printed.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("{name} printed"));
        line.split_once('=').unwrap().1.trim().to_owned()
    };
    let (runtime, client) = (token("LETTA_BRIDGE_RUNTIME_TOKEN"), token("LETTA_BRIDGE_CLIENT_TOKEN"));
    assert!(printed.contains(&format!("LETTA_API_KEY={runtime}")));

    // Use the client token once so the request path gets logged at trace level.
    let mut stderr = child.stderr.take().unwrap();
    let mut log = Vec::new();
    let mut buf = [0u8; 4096];
    let addr = loop {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "log ended early");
        log.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&log);
        if let Some(addr) = logged_addr(&text) {
            break addr.to_owned();
        }
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let res = http.get(format!("http://{addr}/status")).bearer_auth(&client).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ticket: serde_json::Value =
        http.post(format!("http://{addr}/tickets")).bearer_auth(&client).send().await.unwrap().json().await.unwrap();
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    let stream = http.get(format!("http://{addr}/events?ticket={ticket}")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    drop(stream);

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    stderr.read_to_end(&mut log).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("/status"), "the request was logged");
    assert!(!log.contains(&client) && !log.contains(&runtime), "a token reached the log");
    assert!(log.contains("/events") && !log.contains(&ticket), "a ticket reached the log");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains(&client), "tokens are printed once");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_carry_the_request_id() {
    let mut cmd = bridge();
    cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--runtime-token", "json-runtime-token-0001", "--client-token", "json-client-token-00001"])
        .env("RUST_LOG", "info,tower_http=debug")
        .stdout(Stdio::null());
    let mut child = spawn_with_deadline(&mut cmd);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "log ended early");
        let entry: serde_json::Value = serde_json::from_str(&line).expect("each log line is JSON");
        if let Some(addr) = entry["addr"].as_str() {
            break addr.to_owned();
        }
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let res = http.get(format!("http://{addr}/healthz")).header("x-request-id", "json-log-req-1").send().await.unwrap();
    assert_eq!(res.status(), 200);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    child.wait().unwrap();
    let entries: Vec<serde_json::Value> =
        rest.lines().map(|l| serde_json::from_str(l).expect("each log line is JSON")).collect();
    assert!(
        entries.iter().any(|e| e.to_string().contains("json-log-req-1") && e["span"]["path"] == "/healthz"),
        "no request log line with the request id: {rest}"
    );
}

#[test]
fn sigterm_stops_the_bridge_even_when_nothing_reads_its_log_any_more() {
    let mut cmd = bridge();
    cmd.args(["--listen", "127.0.0.1:0"]).env("RUST_LOG", "debug").stdout(Stdio::null());
    let mut child = spawn_with_deadline(&mut cmd);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "stderr ended before the bridge listened");
    }
    // Whoever read the log is gone: every later log line hits a broken pipe.
    drop(stderr);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // Killed by the 30 s deadline instead, it would not exit with 0.
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
