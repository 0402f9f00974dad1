//! Test harness: `spawn_app()` starts the service in process on port 0;
//! `TestApp` has a method per endpoint. The fake runtime (`FakeRuntime`,
//! answering with the recorded frames) and the SSE reader (`Sse`) come from
//! the test kit (testkit/), re-exported here with the recorded fixtures.

use std::net::SocketAddr;

use letta_bridge::{Application, Config};
use letta_bridge_testkit::replay::registration_body;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use letta_bridge_testkit::fixtures;
pub use letta_bridge_testkit::{FakeRuntime, Seen, Sse, SseEvent, WAIT};

pub const RUNTIME_TOKEN: &str = "test-runtime-token-0000000001";
pub const CLIENT_TOKEN: &str = "test-client-token-00000000001";
pub const ADMIN_TOKEN: &str = "test-admin-token-000000000001";

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
        let body = registration_body(device, &format!("{device}-name"));
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
        FakeRuntime::connect_ready(&url, RUNTIME_TOKEN).await
    }

    /// Connects straight to `/ws` without registering (the seed's form).
    pub async fn direct_runtime(&self, device: Option<&str>) -> FakeRuntime {
        let url = match device {
            Some(d) => self.ws_url(&format!("/ws?deviceId={d}")),
            None => self.ws_url("/ws"),
        };
        FakeRuntime::connect_ready(&url, RUNTIME_TOKEN).await
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
        Sse::open(req).await
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

/// A client of Letta's own kind on the bridge: a relay socket
/// (`/v1/environments/{connectionId}/status/ws`) or an App-Server socket
/// (`/app-server/ws`). Keeps every frame it read; never acks by itself.
pub struct ClientWs {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// Every text frame read so far, in order.
    pub seen: Vec<Value>,
}

impl TestApp {
    /// Opens `path` (a relay or App-Server socket URL path with its query) with `token` as bearer.
    pub async fn client_socket(&self, path: &str, token: Option<&str>) -> ClientWs {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = self.ws_url(path).into_client_request().unwrap();
        if let Some(t) = token {
            req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("the client socket opens");
        ClientWs { ws, seen: Vec::new() }
    }

    /// The relay socket of `connection` (a connection or device id), `channel` if any, client token.
    pub async fn relay(&self, connection: &str, channel: Option<&str>) -> ClientWs {
        let channel = channel.map(|c| format!("&channel={c}")).unwrap_or_default();
        let path = format!("/v1/environments/{connection}/status/ws?agentId=pending&conversationId=default{channel}");
        self.client_socket(&path, Some(CLIENT_TOKEN)).await
    }

    /// The App-Server socket with the client token.
    pub async fn app_server(&self) -> ClientWs {
        self.client_socket("/app-server/ws", Some(CLIENT_TOKEN)).await
    }
}

impl ClientWs {
    pub async fn send(&mut self, frame: Value) {
        use futures_util::SinkExt;
        self.ws.send(tokio_tungstenite::tungstenite::Message::text(frame.to_string())).await.expect("sent");
    }

    /// The next text frame; panics after [`WAIT`] or when the socket ends.
    pub async fn next(&mut self) -> Value {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frames");
                    self.seen.push(frame.clone());
                    return frame;
                }
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}; seen: {:?}", self.seen),
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            }
        }
    }

    /// The next frame `pred` accepts, skipping (and keeping) others.
    pub async fn next_matching(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            assert!(tokio::time::Instant::now() < deadline, "no {what}; seen: {:?}", self.seen);
            let frame = self.next().await;
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// The next frame of `kind`.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.next_matching(kind, |f| f["type"] == kind).await
    }

    /// No frame arrives for `quiet`.
    pub async fn assert_quiet(&mut self, quiet: std::time::Duration) {
        use futures_util::StreamExt;
        if let Ok(msg) = tokio::time::timeout(quiet, self.ws.next()).await {
            panic!("expected nothing, got {msg:?}");
        }
    }

    /// Waits for the bridge's close frame; its code and reason.
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("closed in time") {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                Some(Ok(Message::Text(text))) => self.seen.push(serde_json::from_str(text.as_str()).unwrap()),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }
}
