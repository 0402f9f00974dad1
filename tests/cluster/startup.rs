//! An instance's start in cluster mode: without the tokens every instance
//! must share it refuses to start (each would generate its own, and a
//! balancer would send two requests in three to an instance that refuses
//! them), and the runtime's command line it prints points at
//! LETTA_BRIDGE_PUBLIC_URL, the balancer, not at the instance.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use letta_bridge_testkit::bridge::{ADMIN_TOKEN, CLIENT_TOKEN, RUNTIME_TOKEN, without_bridge_env};
use letta_bridge_testkit::process::Guarded;
use letta_bridge_testkit::redis::RedisServer;

use crate::harness::{TempDir, WAIT, skip};

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// Nothing listens there: an instance that got as far as Redis would fail
/// on it instead, with another message.
const NO_REDIS: &str = "redis://127.0.0.1:1";

/// The binary in cluster mode with `env` and nothing else of the caller's.
fn instance(cluster_url: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    without_bridge_env(&mut cmd).args(["--listen", "127.0.0.1:0", "--cluster-url", cluster_url]);
    cmd.envs(env.iter().copied());
    cmd
}

#[test]
fn a_cluster_instance_without_the_shared_tokens_exits_2_naming_each_missing_variable() {
    let out = instance(NO_REDIS, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in [
        "LETTA_BRIDGE_RUNTIME_TOKEN",
        "LETTA_BRIDGE_RUNTIME_TOKENS_FILE",
        "LETTA_BRIDGE_CLIENT_TOKEN",
        "LETTA_BRIDGE_ADMIN_TOKEN",
    ] {
        assert!(stderr.contains(name), "the refusal names {name}: {stderr}");
    }
    assert!(out.stdout.is_empty(), "no token is generated or printed: {}", String::from_utf8_lossy(&out.stdout));

    // Only what is missing is named: here the admin token.
    let given = [("LETTA_BRIDGE_RUNTIME_TOKEN", RUNTIME_TOKEN), ("LETTA_BRIDGE_CLIENT_TOKEN", CLIENT_TOKEN)];
    let out = instance(NO_REDIS, &given).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing: LETTA_BRIDGE_ADMIN_TOKEN ("), "{stderr}");
    assert!(!stderr.contains("LETTA_BRIDGE_CLIENT_TOKEN"), "{stderr}");
}

#[test]
fn a_cluster_instance_prints_the_runtime_command_line_for_the_public_url() {
    let test = "printed-url";
    if RedisServer::program().is_none() {
        return skip(test, "redis-server");
    }
    let dir = TempDir::new(test);
    let redis = RedisServer::start(&dir.path.join("redis"), false);
    let env = [
        ("LETTA_BRIDGE_RUNTIME_TOKEN", RUNTIME_TOKEN),
        ("LETTA_BRIDGE_CLIENT_TOKEN", CLIENT_TOKEN),
        ("LETTA_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("LETTA_BRIDGE_PUBLIC_URL", "http://balancer.example:8284/"),
    ];
    let plain = instance(&redis.url(), &env);
    let args: Vec<&str> = plain.get_args().map(|a| a.to_str().unwrap()).collect();
    let mut cmd = Guarded::command(BIN, &args);
    without_bridge_env(&mut cmd).envs(env).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut process = Guarded::spawn(cmd).expect("the instance starts");
    let stdout = process.child_mut().stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let line = loop {
        let line = lines.recv_timeout(WAIT + Duration::from_secs(10)).unwrap_or_else(|_| {
            panic!("no `letta remote` line printed; stdout so far: {printed:?}");
        });
        if line.contains("letta remote") {
            break line;
        }
        printed.push(line);
    };
    assert_eq!(
        line,
        "  LETTA_BASE_URL=http://balancer.example:8284 IGNORE_SELF_HOSTED_LISTENER_ERROR=1 \
         LETTA_API_KEY=$LETTA_BRIDGE_RUNTIME_TOKEN letta remote --env-name local-dev --backend local"
    );
    assert_eq!(printed, ["Point a runtime at this bridge with:"], "no token generated or printed");
}
