//! What a WebSocket peer is told when it breaks a rule, and what the log
//! never holds: a runtime's frame over LETTA_BRIDGE_MAX_FRAME_BYTES closes
//! its socket with `1009`, a text frame that is not UTF-8 with `1007` (both
//! with a reason, not a bare `1006`), and `RUST_LOG=trace` does not write
//! the frames a runtime and the bridge exchange.

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::helpers::*;

#[tokio::test]
async fn a_runtime_frame_over_the_size_limit_closes_its_socket_with_1009_and_a_reason() {
    let app = spawn_app_with(|c| c.max_frame_bytes = 1024).await;
    let mut rt = app.runtime("dev-big").await;
    rt.send(json!({"type": "stream_delta", "pad": "x".repeat(4096)}));
    let (code, reason) = rt.closed().await.expect("a close frame, not a dropped connection");
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("1024"), "the reason names the limit: {reason}");
}

#[tokio::test]
async fn a_client_socket_frame_over_the_body_limit_closes_it_with_1009_and_a_reason() {
    let app = spawn_app_with(|c| c.max_body_bytes = 2048).await;
    let _rt = app.runtime("dev-a").await;
    let mut client = app.client_socket("/app-server/ws", Some(CLIENT_TOKEN)).await;
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.next().await["type"], "pong");
    client.send(json!({"type": "app_server_info", "pad": "x".repeat(8192)})).await;
    let (code, reason) = client.closed().await.expect("a close frame, not a dropped connection");
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("2048"), "the reason names the limit: {reason}");
}

#[tokio::test]
async fn a_runtime_text_frame_that_is_not_utf8_closes_its_socket_with_1007() {
    let app = spawn_app().await;
    let mut rt = app.runtime("dev-utf8").await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    rt.send_message(Message::Frame(frame));
    let (code, _) = rt.closed().await.expect("a close frame, not a dropped connection");
    assert_eq!(code, 1007);
}

/// Runs a bridge with `RUST_LOG=rust_log`, sends a secret to a runtime and
/// one back, and returns the secrets its log holds.
async fn secrets_logged_with(rust_log: &str) -> Vec<&'static str> {
    use letta_bridge_testkit::bridge::{ADMIN_TOKEN, BridgeProcess, RUNTIME_TOKEN};
    let dir = std::env::temp_dir().join(format!("letta-bridge-trace-{}-{}", std::process::id(), rust_log.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let bridge = BridgeProcess::start_with_env(
        env!("CARGO_BIN_EXE_letta-bridge"),
        dir.join("bridge.log"),
        &[],
        &[("RUST_LOG", rust_log)],
    );
    let url = format!("ws://{}/ws?deviceId=dev-trace", bridge.addr);
    let mut rt = FakeRuntime::connect_ready(&url, RUNTIME_TOKEN).await;
    let command = json!({"type": "secret_apply", "secrets": {"API_KEY": "to-runtime-secret-4711"}});
    let sent = bridge.post_as(ADMIN_TOKEN, "/commands", &command).await;
    assert_eq!(sent.status(), 202);
    assert_eq!(rt.next_frame().await["secrets"]["API_KEY"], "to-runtime-secret-4711");
    let mut events = bridge.events("?types=secret_list_response").await;
    rt.send(json!({"type": "secret_list_response", "request_id": "r1", "values": ["from-runtime-secret-0815"]}));
    events.next_of("secret_list_response").await;
    drop(rt);
    drop(events);
    drop(bridge); // stopped; its log is complete once its last line is copied
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let log = std::fs::read_to_string(dir.join("bridge.log")).unwrap();
        if log.contains("letta_bridge::startup: stopped") || tokio::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let _ = std::fs::remove_dir_all(&dir);
    ["to-runtime-secret-4711", "from-runtime-secret-0815"].into_iter().filter(|s| log.contains(s)).collect()
}

#[tokio::test]
async fn trace_logging_never_writes_the_frames_a_runtime_and_the_bridge_exchange() {
    assert_eq!(secrets_logged_with("trace").await, Vec::<&str>::new());
    // The frames are traced when the operator names the library: the test
    // sees what it looks for.
    assert_eq!(
        secrets_logged_with("info,tungstenite=trace").await,
        ["to-runtime-secret-4711", "from-runtime-secret-0815"]
    );
}
