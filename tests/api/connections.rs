//! Connections that ask for nothing: the listener closes a connection whose
//! request head does not arrive within LETTA_BRIDGE_HEADER_TIMEOUT (silent,
//! half-sent, dripping a byte at a time, a TLS or HTTP/2 opening and no
//! request), one with nothing in flight after LETTA_BRIDGE_IDLE_TIMEOUT, and
//! one whose peer stopped reading; streams and runtime sockets in use stay.
//! The flood test runs the bridge binary under a small open-file limit.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::*;

const HEADER: Duration = Duration::from_millis(300);
const IDLE: Duration = Duration::from_millis(1500);

async fn spawn_watched_app() -> TestApp {
    spawn_app_with(|c| {
        c.header_timeout = HEADER;
        c.idle_timeout = IDLE;
    })
    .await
}

/// Reads until the server closes the connection; how long that took, or
/// `None` when it stayed open for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Reads one HTTP/1.1 response with a `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("a response").unwrap();
        assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|n| n.trim().to_owned()))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn silent_half_sent_and_dripping_connections_are_closed_after_the_header_timeout() {
    let app = spawn_watched_app().await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let drip = TcpStream::connect(app.addr).await.unwrap();
    let (mut drip_read, mut drip_write) = drip.into_split();
    let dripping = tokio::spawn(async move {
        // One byte of a never-ending header every 50 ms: bytes keep coming,
        // the head never completes.
        drip_write.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").await.unwrap();
        while drip_write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    for (what, stream) in [("silent", &mut silent), ("half-sent", &mut half)] {
        assert!(closed_within(stream, WAIT).await.is_some(), "the {what} connection stayed open");
        let took = opened.elapsed();
        assert!(took + Duration::from_millis(50) >= HEADER, "the {what} connection closed early: {took:?}");
    }
    let mut buf = [0u8; 64];
    let eof = tokio::time::timeout(WAIT, drip_read.read(&mut buf)).await.expect("the dripping connection was closed");
    assert!(matches!(eof, Ok(0) | Err(_)), "no response to an unfinished head");
    assert!(opened.elapsed() < IDLE, "closed by the header timeout, not a later one");
    dripping.abort();
}

#[tokio::test]
async fn a_kept_alive_connection_closes_after_the_idle_timeout_and_a_started_head_after_the_header_timeout() {
    let app = spawn_watched_app().await;
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let took = closed_within(&mut idle, IDLE * 4).await.expect("an idle kept-alive connection is closed");
    assert!(took + Duration::from_millis(100) >= IDLE, "closed before the idle timeout: {took:?}");

    let mut started = TcpStream::connect(app.addr).await.unwrap();
    started.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(read_response(&mut started).await.starts_with("HTTP/1.1 200"));
    started.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let took = closed_within(&mut started, IDLE * 4).await.expect("a half-sent second request is closed");
    assert!(took < IDLE, "the header timeout applies once a head has started: {took:?}");
}

#[tokio::test]
async fn a_tls_or_http2_opening_without_a_request_is_closed_after_the_header_timeout() {
    let tls = crate::tls::spawn_tls_app_with(|c| {
        c.header_timeout = HEADER;
        c.idle_timeout = IDLE;
    })
    .await;
    let mut no_hello = TcpStream::connect(tls.app.addr).await.unwrap();
    assert!(closed_within(&mut no_hello, WAIT).await.is_some(), "a TLS handshake that never starts is closed");

    let app = spawn_watched_app().await;
    let mut preface_only = TcpStream::connect(app.addr).await.unwrap();
    preface_only.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    preface_only.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // an empty SETTINGS frame
    let took = closed_within(&mut preface_only, WAIT).await.expect("an HTTP/2 connection without a request is closed");
    assert!(took < IDLE, "{took:?}");
}

#[tokio::test]
async fn a_request_body_that_trickles_in_gets_408_after_the_idle_timeout() {
    let app = spawn_watched_app().await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /input HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"payload\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut slow).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("LETTA_BRIDGE_IDLE_TIMEOUT"), "{response}");
}

#[tokio::test]
async fn streams_and_runtime_sockets_in_use_outlive_both_timeouts() {
    let app = spawn_watched_app().await;
    let mut rt = app.runtime("dev-long").await;
    let mut events = app.events("?types=marker").await;
    // Longer than both timeouts and the watchdog's look: nothing may close.
    tokio::time::sleep(IDLE + HEADER * 2).await;
    rt.emit("marker", "a", "c", json!({"n": 1}));
    assert_eq!(events.next_of("marker").await.data["n"], 1);
    rt.send(json!({"type": "ping"}));
    assert_eq!(rt.next_frame().await["type"], "pong");
}

#[tokio::test]
async fn a_peer_that_stops_reading_its_stream_is_closed_after_the_idle_timeout() {
    let app = spawn_watched_app().await;
    let rt = app.runtime("dev-flood").await;
    // A subscriber with a small receive buffer that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut reader = socket.connect(app.addr).await.unwrap();
    let head = format!("GET /events?types=big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_TOKEN}\r\n\r\n");
    reader.write_all(head.as_bytes()).await.unwrap();
    let pad = "x".repeat(8 * 1024);
    for n in 0..1000 {
        rt.emit("big", "a", "c", json!({"n": n, "pad": pad}));
    }
    // The bridge says when it closed a stalled connection.
    let deadline = Instant::now() + IDLE * 6;
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.lines().any(|l| l.starts_with("letta_bridge_connections_closed_total{reason=\"write_stalled\"}")) {
            break;
        }
        assert!(Instant::now() < deadline, "the stalled subscriber was never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = closed_within(&mut reader, WAIT).await;
    assert!(took.is_some(), "once drained, the stalled stream ends");
}

/// A flood from one peer under an open-file limit of 256: 300 connections
/// that never finish a request. The bridge keeps accepting (no `EMFILE`), a
/// runtime registers and connects during the flood, every flooding socket
/// is closed within the header timeout, and then clients are served again.
#[tokio::test]
async fn a_flood_of_idle_connections_leaves_room_for_a_runtime_under_a_small_descriptor_limit() {
    let dir = std::env::temp_dir().join(format!("letta-bridge-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bridge = letta_bridge_testkit::bridge::BridgeProcess::start_with_open_files(
        env!("CARGO_BIN_EXE_letta-bridge"),
        dir.join("bridge.log"),
        &["--header-timeout", "3s"],
        256,
    );
    let token = letta_bridge_testkit::bridge::RUNTIME_TOKEN;
    let mut flood = Vec::new();
    let mut drips = Vec::new();
    for i in 0..300 {
        let Ok(mut stream) = TcpStream::connect(bridge.addr).await else { continue };
        match i % 3 {
            0 => {}
            1 => stream.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").await.unwrap(),
            _ => {
                let _ = stream.write_all(b"GET /status HTTP/1.1\r\nX-Slow: ").await;
                let (read, mut write) = stream.into_split();
                drips.push(tokio::spawn(async move {
                    while write.write_all(b"a").await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }));
                flood.push(FloodSocket::Split(read));
                continue;
            }
        }
        flood.push(FloodSocket::Whole(stream));
    }
    // During the flood: a runtime registers and connects.
    let registered = bridge
        .http
        .post(bridge.url("/v1/environments/register"))
        .bearer_auth(token)
        .json(&letta_bridge_testkit::replay::registration_body("dev-flooded", "dev-flooded-name"))
        .send()
        .await
        .expect("registration is answered during the flood");
    assert_eq!(registered.status(), 200, "log: {}", bridge.log());
    let reg: serde_json::Value = registered.json().await.unwrap();
    let url = format!("{}?deviceId=dev-flooded", reg["wsUrl"].as_str().unwrap());
    let mut rt = tokio::time::timeout(WAIT, FakeRuntime::connect_ready(&url, token))
        .await
        .expect("the runtime connects during the flood");
    // Every flooding socket is closed (evicted, or at the header timeout).
    for socket in &mut flood {
        assert!(socket.closed_within(Duration::from_secs(10)).await, "a flooding connection stayed open");
    }
    for drip in drips {
        drip.abort();
    }
    // Clients are served again, and see the runtime online.
    let runtimes: serde_json::Value = bridge.get_json("/runtimes").await;
    assert_eq!(runtimes[0]["id"], "dev-flooded", "{runtimes}");
    assert_eq!(runtimes[0]["online"], true);
    rt.send(json!({"type": "ping"}));
    assert_eq!(rt.next_frame().await["type"], "pong");
    let log = bridge.log();
    assert!(!log.contains("cannot accept connections"), "accept ran out of descriptors: {log}");
    drop(bridge);
    let _ = std::fs::remove_dir_all(&dir);
}

enum FloodSocket {
    Whole(TcpStream),
    Split(tokio::net::tcp::OwnedReadHalf),
}

impl FloodSocket {
    async fn closed_within(&mut self, within: Duration) -> bool {
        let mut buf = [0u8; 256];
        let read = async {
            loop {
                let n = match self {
                    FloodSocket::Whole(s) => s.read(&mut buf).await,
                    FloodSocket::Split(s) => s.read(&mut buf).await,
                };
                if matches!(n, Ok(0) | Err(_)) {
                    return;
                }
            }
        };
        tokio::time::timeout(within, read).await.is_ok()
    }
}
