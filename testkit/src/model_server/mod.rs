//! A scripted OpenAI-compatible model server on loopback, for running real
//! Letta Code agent turns offline (PROTOCOL.md §5): `GET /v1/models` lists
//! `fake-model`, and `POST /v1/chat/completions` streams the scripted reply
//! as `chat.completion.chunk` SSE, piece by piece, with an optional delay
//! between pieces. A reply may end in a tool call (`tool_calls` deltas,
//! `finish_reason: "tool_calls"`, PROTOCOL.md §8); the follow-up request,
//! whose last message is the tool's result (`role: "tool"`), gets the
//! reply's [`Reply::then`]. Every request is recorded.
//!
//! A script may also be a plan ([`ModelServer::set_plan`]): each new request
//! (one that does not carry a tool's result) takes the plan's next reply,
//! and the last one taken stays for the requests after the plan. Scripts
//! outside Rust run the same server as the `model-server` program
//! (`src/bin/model_server.rs`), whose replies are JSON ([`Reply::from_json`]).

mod reply;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub use reply::{Reply, ToolCall, carries_tool_result, last_user_text};
use reply::{Script, text_of};

/// The model id the server lists; agents use `lmstudio/fake-model`.
pub const MODEL_ID: &str = "fake-model";

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The JSON body, or `Null` when there was none or it was not JSON.
    pub body: Value,
}

struct Shared {
    /// What chat completions get; a std mutex: never held across `.await`.
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    /// Counts chat completions received, so tests can await one.
    chats: watch::Sender<usize>,
}

/// The running server; stops when dropped.
pub struct ModelServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    chats: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ModelServer {
    /// Binds 127.0.0.1:0 and serves `reply` to every chat completion.
    pub async fn start(reply: Reply) -> Self {
        let (chats_tx, chats) = watch::channel(0);
        let script = Mutex::new(Script { current: reply, plan: VecDeque::new() });
        let shared = Arc::new(Shared { script, requests: Mutex::default(), chats: chats_tx });
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat_completions))
            .fallback(not_found)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the model server binds");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, chats, task }
    }

    /// The base URL to give the runtime as `LMSTUDIO_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the scripted reply for the chat completions that follow
    /// (and drops what is left of a plan).
    pub fn set_reply(&self, reply: Reply) {
        let mut script = self.shared.script.lock().unwrap();
        script.current = reply;
        script.plan.clear();
    }

    /// Replaces the plan: each new chat completion that follows (not a
    /// tool's follow-up) takes the next of `replies`; after the last, that
    /// one stays.
    pub fn set_plan(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().plan = replies.into_iter().collect();
    }

    /// How many chat completions have arrived, as a watch that changes with each.
    pub fn chats(&self) -> watch::Receiver<usize> {
        self.chats.clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The chat completion requests received so far.
    pub fn chat_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.uri.starts_with("/v1/chat/completions")).collect()
    }

    /// What the model was told the tool call `tool_call_id` returned: the
    /// text of the first `role: "tool"` message for it in any chat request
    /// (the tool's output, or the runtime's denial message).
    pub fn tool_result(&self, tool_call_id: &str) -> Option<String> {
        self.chat_requests().iter().find_map(|r| {
            let messages = r.body["messages"].as_array()?;
            let m = messages.iter().find(|m| m["role"] == "tool" && m["tool_call_id"] == tool_call_id)?;
            Some(text_of(&m["content"]))
        })
    }

    /// Waits until at least `n` chat completions have arrived.
    pub async fn wait_for_chats(&self, n: usize, timeout: Duration) {
        let mut rx = self.chats.clone();
        tokio::time::timeout(timeout, rx.wait_for(|&count| count >= n))
            .await
            .unwrap_or_else(|_| panic!("the model server did not get {n} chat completion(s) in {timeout:?}"))
            .expect("the model server is running");
    }
}

fn record(shared: &Shared, method: &Method, uri: String, body: Value) {
    shared.requests.lock().unwrap().push(Recorded { method: method.to_string(), uri, body });
}

async fn models(State(shared): State<Arc<Shared>>, req: Request) -> impl IntoResponse {
    record(&shared, req.method(), req.uri().to_string(), Value::Null);
    axum::Json(
        json!({"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "letta-bridge-tests"}]}),
    )
}

async fn not_found(State(shared): State<Arc<Shared>>, req: Request) -> StatusCode {
    record(&shared, req.method(), req.uri().to_string(), Value::Null);
    StatusCode::NOT_FOUND
}

async fn chat_completions(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let streaming = body["stream"].as_bool().unwrap_or(false);
    let model = body["model"].as_str().unwrap_or(MODEL_ID).to_owned();
    let reply = shared.script.lock().unwrap().reply_to(&body);
    record(&shared, &parts.method, parts.uri.to_string(), body);
    shared.chats.send_modify(|n| *n += 1);

    if !streaming {
        let mut message = json!({"role": "assistant", "content": reply.text()});
        if let Some(call) = &reply.tool_call {
            message["tool_calls"] = json!([{"id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": call.arguments.to_string()}}]);
        }
        return axum::Json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(&reply)}],
            "usage": usage(&reply),
        }))
        .into_response();
    }

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        let chunk = |choices: Value, extra: Option<Value>| {
            let mut c = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": choices});
            if let Some(usage) = extra {
                c["usage"] = usage;
            }
            Ok(Bytes::from(format!("data: {c}\n\n")))
        };
        let delta = |d: Value, finish: Value| json!([{"index": 0, "delta": d, "finish_reason": finish}]);
        // The role comes with the first chunk: the text's, else the tool call's.
        let mut frames = Vec::new();
        if !reply.pieces.is_empty() || reply.tool_call.is_none() {
            frames.push(delta(json!({"role": "assistant", "content": ""}), Value::Null));
        }
        frames.extend(reply.pieces.iter().map(|piece| delta(json!({"content": piece}), Value::Null)));
        if let Some(call) = &reply.tool_call {
            frames.extend(tool_call_deltas(call, frames.is_empty()).into_iter().map(|d| delta(d, Value::Null)));
        }
        for (n, choices) in frames.into_iter().enumerate() {
            // The delay paces the text pieces (not the opening chunk).
            if n > 0 && !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            // A send fails once the runtime hung up (an abort): stop then.
            if tx.send(chunk(choices, None)).await.is_err() {
                return;
            }
        }
        let tail = [
            chunk(delta(json!({}), json!(finish_reason(&reply))), None),
            chunk(json!([]), Some(usage(&reply))),
            Ok(Bytes::from_static(b"data: [DONE]\n\n")),
        ];
        for frame in tail {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .unwrap()
}

/// The `delta`s of a streamed tool call: the call's id, type and name with
/// empty arguments (and the role, when it opens the message), then the
/// arguments' JSON text in two pieces, as OpenAI streams them.
fn tool_call_deltas(call: &ToolCall, opens: bool) -> Vec<Value> {
    let mut first = json!({"tool_calls": [{"index": 0, "id": call.id, "type": "function",
                                           "function": {"name": call.name, "arguments": ""}}]});
    if opens {
        first["role"] = json!("assistant");
        first["content"] = Value::Null;
    }
    let arguments = call.arguments.to_string();
    let mid = arguments.char_indices().map(|(i, _)| i).nth(arguments.chars().count() / 2).unwrap_or(0);
    let (a, b) = arguments.split_at(mid);
    let piece = |text: &str| json!({"tool_calls": [{"index": 0, "function": {"arguments": text}}]});
    vec![first, piece(a), piece(b)]
}

fn finish_reason(reply: &Reply) -> &'static str {
    if reply.tool_call.is_some() { "tool_calls" } else { "stop" }
}

fn usage(reply: &Reply) -> Value {
    let completion = reply.pieces.len() + usize::from(reply.tool_call.is_some());
    json!({"prompt_tokens": 100, "completion_tokens": completion, "total_tokens": 100 + completion})
}
