//! Test harness: `spawn_app()` starts the service on port 0; `TestApp` has a
//! method per endpoint; `FakeRuntime` plays the Letta Code runtime over a
//! real WebSocket; `Sse` reads the event stream like a browser would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::fixtures;
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use letta_bridge::{Application, Config};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

pub const RUNTIME_TOKEN: &str = "test-runtime-token-0000000001";
pub const CLIENT_TOKEN: &str = "test-client-token-00000000001";
pub const ADMIN_TOKEN: &str = "test-admin-token-000000000001";

/// How long any single expectation may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the service with test tokens, letting `tweak` change the config.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::for_tests();
    config.runtime_token = Some(RUNTIME_TOKEN.into());
    config.client_token = Some(CLIENT_TOKEN.into());
    config.admin_token = Some(ADMIN_TOKEN.into());
    tweak(&mut config);
    let app = Application::build(config).await.expect("the app builds");
    let mut addr = app.local_addr();
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    TestApp { addr, http, shutdown, server: Some(server) }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// POSTs JSON with the client token.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.post_as(Some(CLIENT_TOKEN), path, body).await
    }

    /// POSTs with the client token from a task (for requests that wait).
    pub fn post_in_background(&self, path: &str, body: Value) -> tokio::task::JoinHandle<reqwest::Response> {
        let req = self.http.post(self.url(path)).bearer_auth(CLIENT_TOKEN).json(&body);
        tokio::spawn(async move { req.send().await.expect("request sent") })
    }

    pub async fn post_as(&self, token: Option<&str>, path: &str, body: Value) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// POSTs raw bytes with the client token and the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).bearer_auth(CLIENT_TOKEN).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.expect("request sent")
    }

    /// GETs with the client token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(Some(CLIENT_TOKEN), path).await
    }

    pub async fn get_as(&self, token: Option<&str>, path: &str) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// Registers a device with `token`, as the runtime does: the recorded
    /// registration body and headers (fixture `register`).
    pub async fn register_as(&self, token: Option<&str>, device: &str) -> reqwest::Response {
        let body = fixtures::registration_body(device, &format!("{device}-name"));
        let mut req =
            self.http.post(self.url("/v1/environments/register")).json(&body).header("X-Letta-Source", "letta-code");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// Registers `device` and connects to the `wsUrl` it was given; returns
    /// once the bridge serves the socket (a JSON ping got its pong).
    pub async fn runtime(&self, device: &str) -> FakeRuntime {
        let res = self.register_as(Some(RUNTIME_TOKEN), device).await;
        assert_eq!(res.status(), 200);
        let reg: Value = res.json().await.unwrap();
        let url = format!("{}?deviceId={device}&connectionName={device}-name", reg["wsUrl"].as_str().unwrap());
        FakeRuntime::connect_ready(&url).await
    }

    /// Connects straight to `/ws` without registering (the seed's form).
    pub async fn direct_runtime(&self, device: Option<&str>) -> FakeRuntime {
        let url = match device {
            Some(d) => self.ws_url(&format!("/ws?deviceId={d}")),
            None => self.ws_url("/ws"),
        };
        FakeRuntime::connect_ready(&url).await
    }

    /// Opens `GET /events` with this query (e.g. `?types=x`).
    pub async fn events(&self, query: &str) -> Sse {
        self.events_with(query, None).await
    }

    pub async fn events_with(&self, query: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = self.http.get(self.url(&format!("/events{query}"))).bearer_auth(CLIENT_TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req.send().await.expect("request sent");
        assert_eq!(res.status(), 200, "GET /events{query}");
        Sse::new(res)
    }

    pub async fn status(&self) -> Value {
        self.get_json("/status").await
    }
}

/// Asserts a problem+json answer with this status; returns the body.
pub async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "unexpected status");
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let body: Value = res.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("urn:letta-bridge:"), "{body}");
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    body
}

/// What the fake runtime saw on its socket.
#[derive(Debug)]
pub enum Seen {
    Frame(Value),
    /// A WebSocket ping control frame (the bridge's liveness check).
    Ping,
    Close(Option<(u16, String)>),
    /// The socket ended (with or without a close frame).
    Ended,
}

enum Ctl {
    Send(Message),
    /// Stop reading: no more pongs, no replies (a hung runtime).
    Silence,
    /// Drop the TCP connection without a close frame.
    Drop,
}

/// A Letta Code runtime stand-in: answers commands with the frames the real
/// runtime sent in the recording (`fixtures`, see [`replies_to`]) unless
/// auto-replies are off, and emits events in the runtime's envelope.
pub struct FakeRuntime {
    ctl: mpsc::UnboundedSender<Ctl>,
    seen: mpsc::UnboundedReceiver<Seen>,
    auto_reply: Arc<AtomicBool>,
    /// Replay the whole recorded turn on `input`, not just `input_accepted`.
    full_turns: Arc<AtomicBool>,
    /// The runtime's `event_seq`, shared by `emit` and the replayed replies.
    seq: Arc<AtomicU64>,
    /// Frames that arrived before the readiness pong (e.g. re-sync commands).
    early: VecDeque<Value>,
}

impl FakeRuntime {
    /// Connects with the runtime token; panics if the upgrade fails.
    pub async fn connect(url: &str, token: Option<&str>) -> Result<Self, WsError> {
        let mut req = url.into_client_request()?;
        if let Some(t) = token {
            req.headers_mut().insert(AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        }
        Self::connect_request(req).await
    }

    /// Connects with this upgrade request (URL and headers as given).
    pub async fn connect_request(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, WsError> {
        let (socket, _) = tokio_tungstenite::connect_async(req).await?;
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let auto_reply = Arc::new(AtomicBool::new(true));
        let full_turns = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let replies = Replies { auto: auto_reply.clone(), full_turns: full_turns.clone(), seq: seq.clone() };
        tokio::spawn(drive(socket, ctl_rx, seen_tx, replies));
        Ok(Self { ctl, seen, auto_reply, full_turns, seq, early: VecDeque::new() })
    }

    /// Connects and waits until the bridge answers a JSON ping.
    pub async fn connect_ready(url: &str) -> Self {
        let mut rt = Self::connect(url, Some(RUNTIME_TOKEN)).await.expect("runtime connects");
        rt.send(json!({"type": "ping"}));
        let mut early = VecDeque::new();
        loop {
            let frame = rt.next_frame().await;
            if frame == json!({"type": "pong"}) {
                break;
            }
            early.push_back(frame);
        }
        rt.early = early;
        rt
    }

    pub fn send(&self, frame: Value) {
        self.send_message(Message::text(frame.to_string()));
    }

    pub fn send_message(&self, msg: Message) {
        let _ = self.ctl.send(Ctl::Send(msg));
    }

    /// Emits a runtime event in the runtime's envelope (`event_seq`,
    /// `emitted_at`, `idempotency_key` as recorded, see `fixtures::envelope`).
    pub fn emit(&self, kind: &str, agent: &str, conversation: &str, fields: Value) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut frame = fixtures::envelope(kind, seq);
        frame.insert("type".into(), kind.into());
        frame.insert("runtime".into(), json!({"agent_id": agent, "conversation_id": conversation}));
        if let Some(extra) = fields.as_object() {
            frame.extend(extra.clone());
        }
        self.send(Value::Object(frame));
    }

    /// Sends step `i` of a recorded exchange as the answer to `command`
    /// (the frames the real runtime sent, with this command's values).
    pub fn play(&self, exchange: &str, i: usize, command: &Value) {
        for frame in fixtures::replay(exchange, i, command, &|| self.seq.fetch_add(1, Ordering::Relaxed) + 1) {
            self.send(frame);
        }
    }

    /// From now on, answer `input` with the whole recorded turn (fixture
    /// `turn`: `input_accepted`, loop status, the assistant deltas,
    /// `turn_finished`), as the real runtime does; by default only
    /// `input_accepted`, so that tests can script the turn with `emit`.
    pub fn play_recorded_turns(&self) {
        self.full_turns.store(true, Ordering::Relaxed);
    }

    /// Frames that came before the readiness pong, not yet taken by `next_frame`.
    pub fn early_frames(&self) -> &VecDeque<Value> {
        &self.early
    }

    /// Keep receiving commands but stop answering them.
    pub fn quiet(&self) {
        self.auto_reply.store(false, Ordering::Relaxed);
    }

    pub fn silence(&self) {
        let _ = self.ctl.send(Ctl::Silence);
    }

    pub fn drop_connection(&self) {
        let _ = self.ctl.send(Ctl::Drop);
    }

    pub fn close(&self) {
        self.send_message(Message::Close(None));
    }

    /// The next thing seen (pings included).
    pub async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.seen.recv()).await.expect("runtime saw nothing in time").unwrap_or(Seen::Ended)
    }

    /// The next JSON frame, skipping ping control frames.
    pub async fn next_frame(&mut self) -> Value {
        if let Some(frame) = self.early.pop_front() {
            return frame;
        }
        loop {
            match self.next_seen().await {
                Seen::Frame(v) => return v,
                Seen::Ping => continue,
                other => panic!("expected a frame, the runtime saw {other:?}"),
            }
        }
    }

    /// Waits for the bridge to close the socket; returns its close frame.
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            match self.next_seen().await {
                Seen::Close(frame) => return frame,
                Seen::Ended => return None,
                _ => continue,
            }
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How the socket task answers commands.
struct Replies {
    auto: Arc<AtomicBool>,
    full_turns: Arc<AtomicBool>,
    seq: Arc<AtomicU64>,
}

async fn drive(
    mut socket: Socket,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    seen: mpsc::UnboundedSender<Seen>,
    replies: Replies,
) {
    loop {
        tokio::select! {
            c = ctl.recv() => match c {
                Some(Ctl::Send(msg)) => { let _ = socket.send(msg).await; }
                Some(Ctl::Silence) => {
                    // Hold the socket open but never read it again.
                    while let Some(c) = ctl.recv().await {
                        if matches!(c, Ctl::Drop) { return; }
                    }
                    return;
                }
                Some(Ctl::Drop) | None => return,
            },
            msg = socket.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("the bridge sends JSON");
                    if replies.auto.load(Ordering::Relaxed) {
                        let full = replies.full_turns.load(Ordering::Relaxed);
                        let next_seq = || replies.seq.fetch_add(1, Ordering::Relaxed) + 1;
                        for reply in replies_to(&frame, full, &next_seq) {
                            let _ = socket.send(Message::text(reply.to_string())).await;
                        }
                    }
                    let _ = seen.send(Seen::Frame(frame));
                }
                Some(Ok(Message::Ping(_))) => { let _ = seen.send(Seen::Ping); }
                Some(Ok(Message::Close(frame))) => {
                    let _ = seen.send(Seen::Close(frame.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string()))));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => { let _ = seen.send(Seen::Ended); return; }
            }
        }
    }
}

/// The frames the real runtime answered this command with, from the
/// recording (tests/fixtures): the exchange whose command matches, replayed
/// with this command's values. What the recording shows:
/// - `sync`, `input`, `abort_message`, `change_device_state` without a valid
///   runtime scope are dropped unanswered (`sync_without_runtime`);
/// - `sync` replays the state events, then `sync_response` (`sync`);
/// - `input` create_message: `input_accepted` (or the whole turn, `turn`);
///   an approval_response: the `input_accepted` of a pending approval
///   (`accepted: true`), so approval flows can be tested; the recording
///   (`approval_unknown`) only has the refusal of one that is not pending;
/// - `abort_message` with no turn running: `abort_message_response`
///   `aborted: false` (`abort_idle`);
/// - `runtime_start`, `change_device_state`, `list_in_directory`: recorded;
/// - anything else, JSON pings included, gets no answer at all
///   (`unknown_command`, `server_ping`).
pub fn replies_to(frame: &Value, full_turns: bool, next_seq: &dyn Fn() -> u64) -> Vec<Value> {
    let kind = frame["type"].as_str().unwrap_or_default();
    let scoped = fixtures::is_runtime_scope(&frame["runtime"]);
    let exchange = match kind {
        "sync" | "input" | "abort_message" | "change_device_state" if !scoped => return vec![],
        "input" => "turn",
        "sync" => "sync",
        "abort_message" => "abort_idle",
        "runtime_start" => "runtime_start",
        "change_device_state" => "change_device_state",
        "list_in_directory" => "list_in_directory",
        _ => return vec![],
    };
    let whole = kind != "input" || (full_turns && frame["payload"]["kind"] == "create_message");
    fixtures::replay_where(exchange, 0, frame, next_seq, |f| whole || f["type"] == "input_accepted")
}

/// One SSE event as a client sees it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, String>> + Send>>;

/// An SSE reader over a live `GET /events` response.
pub struct Sse {
    stream: EventStream,
}

impl Sse {
    pub fn new(res: reqwest::Response) -> Self {
        use eventsource_stream::Eventsource;
        let stream = res.bytes_stream().eventsource().map(|r| r.map_err(|e| e.to_string()));
        Self { stream: Box::pin(stream) }
    }

    /// The next event; panics if none comes in time or the stream ends.
    pub async fn next(&mut self) -> SseEvent {
        let item = tokio::time::timeout(WAIT, self.stream.next()).await.expect("no event in time");
        let e = item.expect("stream ended").expect("stream error");
        let data = serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("event data is JSON: {}", e.data));
        SseEvent { id: e.id, event: e.event, data }
    }

    /// The next event of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> SseEvent {
        loop {
            let e = self.next().await;
            if e.event == kind {
                return e;
            }
        }
    }

    /// True when the stream ends in time (no more events).
    pub async fn ends(&mut self) -> bool {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// `(epoch, seq)` of an event id.
pub fn seq_of(id: &str) -> (String, u64) {
    let (epoch, seq) = id.rsplit_once('-').expect("id is <epoch>-<seq>");
    (epoch.to_owned(), seq.parse().expect("seq is a number"))
}

/// `body` with the runtime scope every conversation command needs (the
/// real runtime drops `input`, `sync` and `abort_message` without one).
pub fn scoped(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.entry("runtime").or_insert_with(|| json!({"agent_id": "agent-1", "conversation_id": "conv-1"}));
    }
    body
}
