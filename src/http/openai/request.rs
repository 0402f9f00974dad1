//! What `POST /v1/chat/completions` takes, read leniently as OpenAI's
//! clients send it (unknown fields, sampling options and tools are
//! ignored), and checked strictly where it matters: every mistake is a
//! `400` naming the field. What goes on to the agent is the text of the
//! last `user` message that has text; the earlier messages are the
//! client's copy of a history the agent keeps itself.

use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::error::OpenAiError;
use crate::http::ApiError;
use crate::http::extract::JsonBody;

/// Header naming the conversation (default: the agent's `default` one).
pub const CONVERSATION_HEADER: &str = "x-letta-conversation-id";
/// Header naming the runtime, when the agent is seen on several (or not yet).
pub const RUNTIME_HEADER: &str = "x-letta-runtime";
/// The conversation of a request that names none: every agent's own.
pub const DEFAULT_CONVERSATION: &str = "default";

/// Longest id a header may carry.
const MAX_ID: usize = 256;

/// Roles a message may have.
const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

/// A chat completion request (OpenAI's `CreateChatCompletionRequest`, the
/// fields the bridge reads; any other is accepted and ignored).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // a schema only: the body is read by `parse`
pub struct ChatCompletionRequest {
    /// The agent id (`GET /v1/models` lists them).
    #[schema(min_length = 1)]
    model: String,
    /// The conversation so far; only the last `user` message is sent to the
    /// agent (which keeps its own history).
    #[schema(min_items = 1)]
    messages: Vec<ChatMessage>,
    /// `true`: answer with `text/event-stream` chunks as the agent writes.
    stream: Option<bool>,
    /// With `stream`: `{"include_usage": true}` adds a last chunk with `usage`.
    stream_options: Option<StreamOptions>,
    /// Must be 1 when given.
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u32>,
}

/// One message of a request.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // a schema only
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant`, `tool` or `function`.
    #[schema(pattern = "^(system|developer|user|assistant|tool|function)$")]
    role: String,
    /// Text, or content parts (`{"type":"text","text":"…"}`; only text parts
    /// of the last user message with text are sent). Its schema:
    /// `openapi::shapes`.
    content: Option<Value>,
}

/// `stream_options`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // a schema only
pub struct StreamOptions {
    /// Add a last chunk with the turn's token usage (`choices: []`).
    include_usage: Option<bool>,
}

/// A request, read.
#[derive(Debug, PartialEq)]
pub struct ChatRequest {
    /// The agent.
    pub model: String,
    /// The last user message's content: a string, or text parts.
    pub content: Value,
    /// Stream the answer.
    pub stream: bool,
    /// With `stream`: a last chunk with usage.
    pub include_usage: bool,
}

/// Reads a request body (JSON already); a `400` naming the field at fault otherwise.
pub fn parse(value: Value) -> Result<ChatRequest, OpenAiError> {
    let Value::Object(body) = value else {
        return Err(OpenAiError::invalid("body", "invalid_type", "the body must be a JSON object"));
    };
    let model = model(&body)?;
    let messages = match body.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(OpenAiError::invalid("messages", "invalid_value", "`messages` is empty")),
        Some(_) => return Err(wrong_type("messages", "an array of messages")),
    };
    let content = last_user(messages, "messages", false)?;
    let stream = flag(&body, "stream", "stream")?;
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(options)) => flag(options, "include_usage", "stream_options")?,
        Some(_) => return Err(wrong_type("stream_options", "an object")),
    };
    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_f64() == Some(1.0) => {}
        Some(_) => return Err(OpenAiError::invalid("n", "invalid_value", "`n` must be 1: an agent answers once")),
    }
    Ok(ChatRequest { model, content, stream, include_usage })
}

/// The `model`: the agent id.
pub(super) fn model(body: &Map<String, Value>) -> Result<String, OpenAiError> {
    match body.get("model") {
        None | Some(Value::Null) => Err(missing("model")),
        Some(Value::String(m)) if !m.is_empty() => Ok(m.clone()),
        Some(Value::String(_)) => Err(OpenAiError::invalid("model", "invalid_value", "`model` is empty")),
        Some(_) => Err(wrong_type("model", "a string: the agent id")),
    }
}

/// The content of the last `user` message with text among `messages` (the
/// field `param`); with `typed`, items of another `type` than `message`
/// (the Responses API's tool outputs, …) are passed over.
pub(super) fn last_user(messages: &[Value], param: &'static str, typed: bool) -> Result<Value, OpenAiError> {
    let mut last_user = None;
    for message in messages {
        if typed {
            match message.get("type") {
                _ if !message.is_object() => return Err(wrong_type(param, "an array of objects")),
                None => {}
                Some(Value::String(t)) if t == "message" => {}
                Some(Value::String(_)) => continue,
                Some(_) => return Err(wrong_type(param, "items whose `type` is a string")),
            }
        }
        let role = message.get("role").and_then(Value::as_str);
        let Some(role) = role.filter(|r| ROLES.contains(r)) else {
            let roles = ROLES.join(", ");
            return Err(OpenAiError::invalid(
                param,
                "invalid_value",
                format!("each message needs a `role` of {roles}"),
            ));
        };
        let text = text_of(message, param)?;
        if role == "user" && text.is_some() {
            last_user = text;
        }
    }
    last_user.ok_or_else(|| {
        OpenAiError::invalid(param, "invalid_value", format!("`{param}` holds no `user` message with text"))
    })
}

/// A message's text as it would be sent (a string, or its text parts);
/// `None` when it has none.
fn text_of(message: &Value, param: &'static str) -> Result<Option<Value>, OpenAiError> {
    match message.get("content") {
        Some(Value::String(text)) => Ok(Some(Value::String(text.clone())).filter(|_| !text.is_empty())),
        Some(Value::Array(parts)) => {
            let text: Vec<Value> = parts
                .iter()
                .filter(|p| p["type"] == "text" || p["type"] == "input_text")
                .filter_map(|p| p["text"].as_str())
                .filter(|t| !t.is_empty())
                .map(|t| json!({"type": "text", "text": t}))
                .collect();
            Ok(Some(Value::Array(text)).filter(|t| t.as_array().is_some_and(|t| !t.is_empty())))
        }
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(wrong_type(param, "a message `content` that is a string or an array of content parts")),
    }
}

/// An optional boolean field.
pub(super) fn flag(object: &Map<String, Value>, name: &str, param: &'static str) -> Result<bool, OpenAiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(wrong_type(param, "a boolean")),
    }
}

pub(super) fn missing(param: &'static str) -> OpenAiError {
    OpenAiError::invalid(param, "missing_required_parameter", format!("`{param}` is required"))
}

pub(super) fn wrong_type(param: &'static str, expected: &str) -> OpenAiError {
    OpenAiError::invalid(param, "invalid_type", format!("`{param}` must be {expected}"))
}

/// A request's JSON body, its shape refusals (`422` elsewhere) in OpenAI's
/// form: a `400` `invalid_type` on `body`.
pub fn json_body(body: Result<JsonBody<Value>, ApiError>) -> Result<Value, OpenAiError> {
    body.map(|b| b.0).map_err(|e| match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY => OpenAiError::invalid("body", "invalid_type", e.to_string()),
        _ => e.into(),
    })
}

/// The `X-Letta-Conversation-Id` and `X-Letta-Runtime` headers: ids of
/// 1 to 256 visible ASCII characters.
pub fn header_id(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, OpenAiError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let bad = || {
        OpenAiError::invalid(name, "invalid_value", format!("`{name}` must be 1 to {MAX_ID} visible ASCII characters"))
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() || text.len() > MAX_ID || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests;
