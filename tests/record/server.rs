//! The server side the runtime talks to, played by the recorder itself (no
//! bridge): answers health, registration, the WebSocket upgrade and
//! runtime-status like the bridge does, and captures every request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The connection id the recorder hands out (stable, so fixtures are too).
pub const CONNECTION_ID: &str = "conn-recorded-1";

/// One HTTP request the runtime made.
#[derive(Debug, Clone)]
pub struct Captured {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    /// What we answered.
    pub status: u16,
    pub answer: Option<Value>,
}

#[derive(Clone)]
struct Ctx {
    api_key: String,
    requests: mpsc::UnboundedSender<Captured>,
    sockets: mpsc::UnboundedSender<(Instant, WebSocket)>,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    pub requests: mpsc::UnboundedReceiver<Captured>,
    pub sockets: mpsc::UnboundedReceiver<(Instant, WebSocket)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the server on a loopback port; `api_key` is the key the runtime
/// is given (its value never reaches a fixture).
pub async fn start(api_key: &str) -> FakeServer {
    let (req_tx, requests) = mpsc::unbounded_channel();
    let (sock_tx, sockets) = mpsc::unbounded_channel();
    let ctx = Ctx { api_key: api_key.to_owned(), requests: req_tx, sockets: sock_tx };
    let app = Router::new().fallback(handle).with_state(ctx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the recorder's server runs");
    });
    FakeServer { addr, requests, sockets, task }
}

/// Every request lands here: one place captures, then answers by path.
async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let at = Instant::now();
    let (mut parts, body) = req.into_parts();
    let uri: Uri = parts.uri.clone();
    let method = parts.method.clone();
    let headers = capture_headers(&parts.headers, &ctx.api_key);
    let upgrade = if headers.get("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        WebSocketUpgrade::from_request_parts(&mut parts, &()).await.ok()
    } else {
        None
    };
    let bytes: Bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let body = (!bytes.is_empty()).then(|| {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    });
    let path = uri.path().to_owned();

    let (status, answer, response) = match (&method, path.as_str(), upgrade) {
        (_, p, Some(ws)) if p == format!("/ws/{CONNECTION_ID}") => {
            let sockets = ctx.sockets.clone();
            let response = ws.on_upgrade(move |socket| async move {
                let _ = sockets.send((Instant::now(), socket));
            });
            (101, None, response)
        }
        (&Method::GET, "/v1/health", _) => ok(json!({"status": "ok"})),
        (&Method::POST, "/v1/environments/register", _) => {
            let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            ok(json!({
                "connectionId": CONNECTION_ID,
                "wsUrl": format!("ws://{host}/ws/{CONNECTION_ID}"),
                "supportsSplitStatusChannels": false,
                "supportsPairedListenerGenerations": false,
            }))
        }
        (&Method::GET, p, _) if p.starts_with("/v1/agents/") && p.ends_with("/runtime-status") => {
            // What the bridge answers (src/http/runtime_side.rs): every
            // conversation asked about is idle, with no conflicting listener.
            let agent = p.trim_start_matches("/v1/agents/").trim_end_matches("/runtime-status");
            let ids = uri.query().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix("conversation_ids="));
            let statuses: Vec<Value> = ids
                .unwrap_or("")
                .split(',')
                .filter(|id| !id.is_empty())
                .map(|id| json!({"conversation_id": id, "state": "IDLE", "has_conflicting_listeners": false}))
                .collect();
            ok(json!({"agent_id": agent, "statuses": statuses}))
        }
        _ => {
            let problem = json!({"message": "not found"});
            (404, Some(problem.clone()), (StatusCode::NOT_FOUND, axum::Json(problem)).into_response())
        }
    };
    let _ = ctx.requests.send(Captured {
        at,
        method: method.to_string(),
        path,
        query: uri.query().map(str::to_owned),
        headers,
        body,
        status,
        answer,
    });
    response
}

fn ok(body: Value) -> (u16, Option<Value>, Response) {
    (200, Some(body.clone()), axum::Json(body).into_response())
}

/// Headers by lower-case name; the Authorization value is replaced by a
/// statement of whether it carried the key the runtime was given.
fn capture_headers(headers: &HeaderMap, api_key: &str) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("<non-ascii>");
            let value = match name.as_str() {
                "authorization" if value == format!("Bearer {api_key}") => "Bearer <LETTA_API_KEY>".to_owned(),
                "authorization" => "<an authorization other than Bearer <LETTA_API_KEY>>".to_owned(),
                _ => value.to_owned(),
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}
