//! The access log at the default level: one line per request with its
//! method, path (no query), status, time and request id; an event stream's
//! opening and closing with how long it lasted.

use std::time::Duration;

use letta_bridge_testkit::bridge::{BridgeProcess, CLIENT_TOKEN};

use crate::helpers::WAIT;

#[tokio::test]
async fn every_request_leaves_one_info_line_and_a_stream_its_opening_and_closing() {
    let dir = std::env::temp_dir().join(format!("letta-bridge-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bridge = BridgeProcess::start_with_env(
        env!("CARGO_BIN_EXE_letta-bridge"),
        dir.join("bridge.log"),
        &[],
        &[("RUST_LOG", "info")],
    );
    let status =
        bridge.http.get(bridge.url("/status")).bearer_auth(CLIENT_TOKEN).header("x-request-id", "req-status-1");
    assert_eq!(status.send().await.unwrap().status(), 200);
    let refused = bridge.http.get(bridge.url("/events?ticket=tk_secret-in-the-query")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let stream =
        bridge.http.get(bridge.url("/events")).bearer_auth(CLIENT_TOKEN).header("x-request-id", "req-stream-1");
    let mut stream = stream.send().await.unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::timeout(WAIT, stream.chunk()).await.expect("the stream's first bytes").unwrap();
    drop(stream);

    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let log = bridge.log();
        if log.contains("event stream closed") || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let line =
        |needle: &str| log.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in {log}"));
    let request = line("request_id=req-status-1");
    for part in [" INFO ", "method=GET", "path=/status", "status=200", "ms="] {
        assert!(request.contains(part), "{part} missing from {request}");
    }
    assert_eq!(log.lines().filter(|l| l.contains("request_id=req-status-1")).count(), 1, "one line per request");
    assert!(line("path=/events").contains("status=401"), "{log}");
    assert!(!log.contains("tk_secret-in-the-query"), "the query never reaches the log");
    assert!(line("event stream opened").contains("request_id=req-stream-1"), "{log}");
    let closed = line("event stream closed");
    assert!(closed.contains("request_id=req-stream-1") && closed.contains("secs="), "{closed}");
    drop(bridge);
    let _ = std::fs::remove_dir_all(&dir);
}
