//! `POST /v1/chat/completions`: the body read ([`request`]), the turn
//! prepared and run on the core ([`turn`]), and the answer rendered — a
//! `chat.completion` once the turn ends, or with `stream: true` a stream of
//! chunks as it goes ([`stream`]).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::IntoParams;

use super::chunks::Chunks;
use super::error::{ErrorBody, OpenAiError};
use super::request::{self, ChatCompletionRequest};
use super::shapes::{AssistantMessage, ChatCompletion, Choice, ChunkEvent, LettaTurn, finish_reason};
use super::{stream, turn};
use crate::http::extract::{Client, JsonBody};
use crate::http::{ApiError, AppState};

/// The headers that say where a message goes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only: read by `request::header_id`
pub struct LettaHeaders {
    /// The conversation (default: `default`, the agent's own).
    #[param(rename = "X-Letta-Conversation-Id", min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    conversation: Option<String>,
    /// The runtime, when the agent is seen on several online, or on none yet.
    #[param(rename = "X-Letta-Runtime", min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    runtime: Option<String>,
}

/// Unix seconds now.
pub fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Send the last user message to the agent named by `model` and answer
/// with its reply, as OpenAI's Chat Completions API does. The agent keeps
/// its own history: earlier messages are not sent again. With `stream:
/// true`, a `text/event-stream` of `chat.completion.chunk`s, then `data:
/// [DONE]`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", params(LettaHeaders),
    request_body = ChatCompletionRequest, security(("client" = [])),
    responses(
        (status = 200, description = "The agent's answer; with `stream: true`, `text/event-stream` of `chat.completion.chunk` events (`data: {…}`), then `data: [DONE]`",
            content((ChatCompletion = "application/json"), (ChunkEvent = "text/event-stream"))),
        (status = 400, description = "A malformed or incomplete request (the field in `param`)", body = ErrorBody),
        (status = 401, description = "A missing or wrong API key (the client token, or a user token)", body = ErrorBody),
        (status = 429, description = "A per-credential limit was reached (`rate_limited`: LETTA_BRIDGE_USER_RATE, LETTA_BRIDGE_CLIENT_RATE) or the connect rate; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 403, description = "The token may not send to this agent or conversation", body = ErrorBody),
        (status = 404, description = "An unknown agent (`model_not_found`) or runtime", body = ErrorBody),
        (status = 409, description = "The agent is on several runtimes (`ambiguous_runtime`), or its turn stopped at a tool approval with LETTA_BRIDGE_OPENAI_APPROVALS=fail (`approval_required`)", body = ErrorBody),
        (status = 413, description = "The body is over LETTA_BRIDGE_MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 502, description = "The runtime disconnected, or the turn ended with an error", body = ErrorBody),
        (status = 503, description = "No runtime online (or not the agent's), or no room for the turn; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
        (status = 504, description = "The turn did not end within LETTA_BRIDGE_MAX_WAIT_TIMEOUT", body = ErrorBody)))]
pub(super) async fn chat_completions(
    State(state): State<AppState>,
    client: Result<Client, ApiError>,
    headers: HeaderMap,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, OpenAiError> {
    let Client(role) = client?;
    let asked = request::parse(request::json_body(body)?)?;
    // A streamed answer is an open stream: it takes its place first.
    let slot = if asked.stream { Some(state.limits.stream(&role)?) } else { None };
    let begun = turn::begin(&state, role, &headers, &asked.model, asked.content.clone())?;
    let turn::Begun { runtime, conversation, run, started, seen } = begun;
    let created = unix_secs();
    if asked.stream {
        let chunks = Chunks { id: String::new(), created, model: asked.model, include_usage: asked.include_usage };
        return stream::answer(&state, slot.expect("taken for a stream"), run, started, seen, chunks).await;
    }
    let finished = run.await?;
    let (text, reasoning) = {
        let progress = seen.borrow();
        (progress.text().to_owned(), progress.reasoning().to_owned())
    };
    let last = &finished.last;
    let completion = ChatCompletion {
        id: format!("chatcmpl-{}", finished.request_id),
        object: "chat.completion",
        created,
        model: asked.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: text,
                reasoning_content: Some(reasoning).filter(|r| !r.is_empty()),
                refusal: None,
            },
            finish_reason: finish_reason(&last.stop_reason),
            logprobs: None,
        }],
        usage: finished.usage.map(Into::into),
        letta: LettaTurn {
            runtime_id: runtime,
            conversation_id: conversation,
            request_id: finished.request_id.clone(),
            stop_reason: last.stop_reason.clone(),
            cursor: finished.cursor.clone(),
        },
    };
    Ok(axum::Json(completion).into_response())
}
