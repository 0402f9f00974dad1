//! HTTP/2 with TLS: ALPN offers `h2` (then `http/1.1`), so a browser puts
//! every tab's event streams and commands on one connection instead of
//! queueing behind its six-connections-per-origin limit. The runtime's
//! `wss://` socket stays on HTTP/1.1. The client here is the `h2` crate over
//! the TLS fixture of tls.rs; the runtime answers with the recorded turn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{Method, Request, Response, StatusCode, Version};
use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use h2::RecvStream;
use h2::client::SendRequest;
use letta_bridge_testkit::fake_runtime::{Settings, replies_to};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use crate::tls::{TlsApp, spawn_tls_app, spawn_tls_app_with};

const DEVICE: &str = "dev-h2";
const STREAMS: usize = 10;

fn message(text: &str) -> Value {
    json!({
        "runtime": {"agent_id": "agent-1", "conversation_id": "conv-1"},
        "payload": {"kind": "create_message", "messages": [{"role": "user", "content": text}]}
    })
}

#[tokio::test]
async fn alpn_offers_h2_to_browsers_and_http11_to_clients_that_ask_only_for_it() {
    let t = spawn_tls_app().await;
    assert_eq!(alpn(&t.tls_offering(&[b"h2", b"http/1.1"]).await).as_deref(), Some("h2"), "a browser's offer");
    assert_eq!(alpn(&t.tls_offering(&[b"http/1.1"]).await).as_deref(), Some("http/1.1"));
    assert_eq!(alpn(&t.tls_offering(&[]).await), None, "no ALPN offered, none chosen: HTTP/1.1 by default");
}

#[tokio::test]
async fn one_http2_connection_carries_ten_event_streams_and_the_commands_that_feed_them() {
    // Short keepalives, to see them pass on every stream of the connection.
    let t = spawn_tls_app_with(|c| c.keepalive = Duration::from_millis(200)).await;
    let _runtime = wss_runtime(&t, DEVICE).await;
    let mut h2 = H2::connect(&t).await;

    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(h2.events(&format!("/events?runtime={DEVICE}")).await);
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let first = s.chunk().await;
        assert!(
            first.starts_with("retry: 1000\n: connected; 1 runtime online\n\n"),
            "stream {i}: first bytes at once: {first:?}"
        );
        s.until_keepalive().await;
    }
    assert_eq!(h2.status().await["events"]["subscribers"], STREAMS, "ten subscriptions on one connection");

    let accepted = h2.post("/input", message("hello")).await;
    assert_eq!(accepted.0, StatusCode::ACCEPTED, "{}", accepted.1);
    // Read as browser tabs do, all at once: the connection's flow-control
    // window is shared, so unread streams would hold it and stall the rest.
    let turns = join_all(streams.iter_mut().map(Events::turn)).await;
    let kinds: Vec<&str> = turns[0].iter().map(|(_, kind)| kind.as_str()).collect();
    assert!(kinds.contains(&"input_accepted") && kinds.contains(&"stream_delta"), "the command's turn: {kinds:?}");
    assert!(turns.iter().all(|turn| *turn == turns[0]), "every stream saw the same events, ids and order: {turns:?}");

    // One tab goes away: its stream is reset (RST_STREAM), the connection stays.
    drop(streams.pop());
    h2.until_subscribers(STREAMS - 1).await;
    let accepted = h2.post("/input", message("again")).await;
    assert_eq!(accepted.0, StatusCode::ACCEPTED, "{}", accepted.1);
    let again = join_all(streams.iter_mut().map(Events::turn)).await;
    assert!(again[0].iter().any(|(_, kind)| kind == "input_accepted"), "the second command's turn: {:?}", again[0]);
    assert!(again.iter().all(|turn| *turn == again[0]), "the other streams carry on: {again:?}");
}

/// A runtime on `wss://` whose TLS client offers only `http/1.1`, as a
/// browser does for a WebSocket (no RFC 8441 here); it answers `input` with
/// the whole recorded turn, like [`FakeRuntime::play_recorded_turns`].
async fn wss_runtime(t: &TlsApp, device: &str) -> JoinHandle<()> {
    let tls = t.tls_offering(&[b"http/1.1"]).await;
    assert_eq!(alpn(&tls).as_deref(), Some("http/1.1"));
    let mut request =
        format!("wss://localhost:{}/ws?deviceId={device}", t.app.addr.port()).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {RUNTIME_TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::client_async(request, tls).await.expect("wss upgrade over HTTP/1.1");
    // Ready once the bridge answers a JSON ping (it serves the socket then).
    socket.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.expect("pong in time").unwrap().unwrap() {
            Message::Text(text) if text.as_str() == r#"{"type":"pong"}"# => break,
            _ => continue,
        }
    }
    tokio::spawn(async move {
        let seq = AtomicU64::new(0);
        let settings = Settings { full_turns: true, ..Settings::default() };
        while let Some(Ok(msg)) = socket.next().await {
            let Message::Text(text) = msg else { continue };
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            for reply in replies_to(&frame, settings, &|| seq.fetch_add(1, Ordering::Relaxed) + 1) {
                if socket.send(Message::text(reply.to_string())).await.is_err() {
                    return; // the bridge is stopping
                }
            }
        }
    })
}

/// The protocol the server chose by ALPN.
fn alpn<IO>(stream: &TlsStream<IO>) -> Option<String> {
    stream.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned())
}

/// One HTTP/2 connection (ALPN `h2` checked), requests as streams on it.
struct H2 {
    send: SendRequest<Bytes>,
    authority: String,
}

impl H2 {
    /// Connects offering what browsers offer; fails unless the server picks `h2`.
    async fn connect(t: &TlsApp) -> Self {
        let tls = t.tls_offering(&[b"h2", b"http/1.1"]).await;
        assert_eq!(alpn(&tls).as_deref(), Some("h2"), "the server must choose h2, not fall back to HTTP/1.1");
        let (send, connection) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                panic!("the HTTP/2 connection failed: {e}");
            }
        });
        Self { send, authority: format!("localhost:{}", t.app.addr.port()) }
    }

    /// Sends a request on a new stream; returns the response head and body.
    async fn request(&mut self, method: Method, path: &str, body: Option<Value>) -> Response<RecvStream> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority))
            .header("authorization", format!("Bearer {CLIENT_TOKEN}"));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let send = self.send.clone().ready().await.expect("a stream is available");
        self.send = send;
        let (response, mut sending) = self.send.send_request(request.body(()).unwrap(), body.is_none()).unwrap();
        if let Some(body) = body {
            sending.send_data(Bytes::from(body.to_string()), true).unwrap();
        }
        let response = tokio::time::timeout(WAIT, response).await.expect("response head in time").unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        response
    }

    /// Opens `GET path` as an event stream.
    async fn events(&mut self, path: &str) -> Events {
        let response = self.request(Method::GET, path, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/event-stream");
        // Connection-specific headers are malformed in HTTP/2 (RFC 9113 §8.2.2).
        for name in ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"] {
            assert!(!headers.contains_key(name), "{name} on an HTTP/2 response");
        }
        Events { body: response.into_body(), buf: String::new() }
    }

    /// `POST path` with a JSON body: the status and the body text.
    async fn post(&mut self, path: &str, body: Value) -> (StatusCode, String) {
        let response = self.request(Method::POST, path, Some(body)).await;
        let status = response.status();
        (status, read_to_end(response.into_body()).await)
    }

    async fn status(&mut self) -> Value {
        let response = self.request(Method::GET, "/status", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        serde_json::from_str(&read_to_end(response.into_body()).await).unwrap()
    }

    /// Waits until the bridge counts `n` subscriptions.
    async fn until_subscribers(&mut self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = self.status().await;
            if status["events"]["subscribers"] == n {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "still {} subscribers, not {n}", status["events"]);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn read_to_end(mut body: RecvStream) -> String {
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, body.data()).await.expect("body in time") {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).unwrap()
}

/// An event stream on an HTTP/2 stream; dropping it resets the stream.
struct Events {
    body: RecvStream,
    buf: String,
}

impl Events {
    /// The next DATA received, as text.
    async fn chunk(&mut self) -> String {
        let chunk = tokio::time::timeout(WAIT, self.body.data()).await.expect("data in time");
        let chunk = chunk.expect("the stream is open").unwrap();
        // Hand the window back, as a browser does: flow control is per stream.
        self.body.flow_control().release_capacity(chunk.len()).unwrap();
        String::from_utf8(chunk.to_vec()).unwrap()
    }

    /// The next SSE block (`\n\n`-terminated), comments included.
    async fn block(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                return self.buf.drain(..end + 2).collect();
            }
            let chunk = self.chunk().await;
            self.buf.push_str(&chunk);
        }
    }

    async fn until_keepalive(&mut self) {
        while self.block().await != ": keepalive\n\n" {}
    }

    /// `(id, event)` of every event up to and including the next `turn_finished`.
    async fn turn(&mut self) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        loop {
            let block = self.block().await;
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
            let (Some(id), Some(event)) = (field("id: "), field("event: ")) else { continue };
            let done = event == "turn_finished";
            seen.push((id, event));
            if done {
                return seen;
            }
        }
    }
}
