//! The OpenAI-compatible API (issue 23): `POST /v1/chat/completions` and
//! `GET /v1/models`, driven as OpenAI's clients drive them, against the
//! fake runtime. `model` is the agent id; errors are in OpenAI's shape.

mod access;
mod approvals;
mod errors;
mod responses;
mod stream;

use serde_json::{Value, json};

use crate::helpers::*;

pub const AGENT: &str = "agent-1";

/// A chat completion request for `AGENT` with one user message.
pub fn ask(text: &str) -> Value {
    json!({"model": AGENT, "messages": [{"role": "user", "content": text}]})
}

/// `POST /v1/chat/completions` as the `openai` SDKs send it: the token as
/// `Authorization: Bearer`, extra headers as given.
pub fn chat(app: &TestApp, token: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let mut req = app.http.post(app.url("/v1/chat/completions")).bearer_auth(token).json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req
}

/// A runtime `device` that has shown the bridge `AGENT` in `conversation`
/// (an event in that scope), as a real runtime does at `runtime_start`.
pub async fn runtime_with_agent(app: &TestApp, device: &str, conversation: &str) -> FakeRuntime {
    let rt = app.runtime(device).await;
    let mut events = app.events("").await;
    rt.emit("update_loop_status", AGENT, conversation, json!({"loop_status": {"status": "WAITING_ON_INPUT"}}));
    events.next_of("update_loop_status").await;
    rt
}

/// A `stream_delta` of `rt` in `AGENT`'s `conversation`.
pub fn delta(rt: &FakeRuntime, conversation: &str, delta: Value) {
    rt.emit("stream_delta", AGENT, conversation, json!({ "delta": delta }));
}

/// An `assistant_message` piece of message `id`.
pub fn assistant(rt: &FakeRuntime, conversation: &str, id: &str, text: &str) {
    let piece = json!({"id": id, "message_type": "assistant_message", "content": [{"type": "text", "text": text}], "run_id": "run-1"});
    delta(rt, conversation, piece);
}

/// The turn's end.
pub fn finished(rt: &FakeRuntime, conversation: &str, stop_reason: &str) {
    let fields = json!({"turn_id": "turn-1", "stop_reason": stop_reason, "run_id": "run-1"});
    rt.emit("turn_finished", AGENT, conversation, fields);
}

/// Expects an OpenAI error with `status` and `code`; answers its `error`.
pub async fn assert_openai_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status, "{:?}", res.headers());
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = res.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].is_string(), "{body}");
    body["error"].clone()
}

#[tokio::test]
async fn a_completion_answers_with_the_turns_text_reasoning_and_usage() {
    let app = spawn_app().await;
    let mut rt = runtime_with_agent(&app, "dev-a", "conv-7").await;
    let body = json!({"model": AGENT, "messages": [
        {"role": "system", "content": "ignored: the agent has its own"},
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "hello"}]});
    let pending = tokio::spawn(chat(&app, CLIENT_TOKEN, &body, &[("X-Letta-Conversation-Id", "conv-7")]).send());
    let frame = rt.next_frame().await;
    assert_eq!(frame["type"], "input");
    assert_eq!(frame["runtime"], json!({"agent_id": AGENT, "conversation_id": "conv-7"}));
    let messages = frame["payload"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "only the last user message is sent: {frame}");
    assert_eq!(messages[0]["content"], "hello");

    delta(&rt, "conv-7", json!({"id": "r-1", "message_type": "reasoning_message", "reasoning": "They greet me."}));
    assistant(&rt, "conv-7", "m-1", "Hi");
    delta(&rt, "conv-7", json!({"id": "t-1", "message_type": "tool_call_message", "tool_call": {"name": "Read"}}));
    assistant(&rt, "conv-7", "m-1", " there.");
    let usage =
        json!({"message_type": "usage_statistics", "prompt_tokens": 100, "completion_tokens": 4, "total_tokens": 104});
    delta(&rt, "conv-7", usage);
    finished(&rt, "conv-7", "end_turn");

    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let completion: Value = res.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], AGENT);
    assert_eq!(completion["id"], format!("chatcmpl-{}", frame["request_id"].as_str().unwrap()));
    let choice = &completion["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hi there.");
    assert_eq!(choice["message"]["reasoning_content"], "They greet me.");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(completion["usage"], json!({"prompt_tokens": 100, "completion_tokens": 4, "total_tokens": 104}));
    assert_eq!(completion["letta"]["runtime_id"], "dev-a");
    assert_eq!(completion["letta"]["conversation_id"], "conv-7");
}

#[tokio::test]
async fn a_message_without_a_conversation_header_goes_to_the_agents_default_conversation() {
    let app = spawn_app().await;
    let mut rt = runtime_with_agent(&app, "dev-a", "default").await;
    let pending = tokio::spawn(chat(&app, CLIENT_TOKEN, &ask("hi"), &[]).send());
    let frame = rt.next_frame().await;
    assert_eq!(frame["runtime"], json!({"agent_id": AGENT, "conversation_id": "default"}));
    assistant(&rt, "default", "m-1", "Hello.");
    finished(&rt, "default", "max_steps");
    let completion: Value = pending.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Hello.");
    assert_eq!(completion["choices"][0]["finish_reason"], "length", "out of steps reads as length");
    assert!(completion.get("usage").is_none(), "no usage reported, none invented");
}

#[tokio::test]
async fn models_lists_the_agents_seen_on_the_runtimes_as_openai_models() {
    let app = spawn_app().await;
    let empty: Value = app.get("/v1/models").await.json().await.unwrap();
    assert_eq!(empty, json!({"object": "list", "data": []}));
    let rt = runtime_with_agent(&app, "dev-a", "default").await;
    let mut events = app.events("").await;
    rt.emit("update_loop_status", "agent-2", "conv-x", json!({"loop_status": {"status": "WAITING_ON_INPUT"}}));
    rt.emit("update_loop_status", AGENT, "conv-y", json!({"loop_status": {"status": "WAITING_ON_INPUT"}}));
    events.next_matching("agent-1's second scope", |e| e.data["runtime"]["conversation_id"] == "conv-y").await;
    let list: Value = app.get("/v1/models").await.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [AGENT, "agent-2"], "each agent once");
    assert_eq!(list["data"][0]["object"], "model");
    assert_eq!(list["data"][0]["owned_by"], "dev-a");
    assert!(list["data"][0]["created"].as_u64().unwrap() > 1_700_000_000);

    let one: Value = app.get("/v1/models/agent-2").await.json().await.unwrap();
    assert_eq!(one["id"], "agent-2");
    assert_openai_error(app.get("/v1/models/agent-9").await, 404, "model_not_found").await;
}

#[tokio::test]
async fn the_letta_environments_api_still_answers_beside_the_openai_routes() {
    let app = spawn_app().await;
    let _rt = app.runtime("dev-a").await;
    let res = app.get("/v1/environments").await;
    assert_eq!(res.status(), 200);
    let res = app.get("/v1/chat/completions").await;
    assert_eq!(res.status(), 405, "only POST");
}
