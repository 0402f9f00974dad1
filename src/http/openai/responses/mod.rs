//! `POST /v1/responses`: OpenAI's Responses API on the same turn machinery
//! as chat completions — the request read ([`request`]), the turn prepared
//! and run ([`super::turn`]), the answer a `response` object or, with
//! `stream: true`, the Responses API's events ([`events`]).

mod events;
mod request;
mod shapes;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use request::ResponseRequest;
pub use shapes::{ResponseEvent, ResponseObject};

use super::chat::{LettaHeaders, unix_secs};
use super::error::{ErrorBody, OpenAiError};
use super::shapes::LettaTurn;
use super::{stream, turn};
use crate::http::extract::{Client, JsonBody};
use crate::http::{ApiError, AppState};

/// Send the last user message to the agent named by `model` and answer
/// with its reply, as OpenAI's Responses API does. The agent keeps its own
/// history: earlier input items and `previous_response_id` are not used.
/// With `stream: true`, the Responses API's server-sent events.
#[utoipa::path(post, path = "/v1/responses", tag = "openai", params(LettaHeaders),
    request_body = ResponseRequest, security(("client" = [])),
    responses(
        (status = 200, description = "The agent's answer; with `stream: true`, `text/event-stream` of the Responses API's events",
            content((ResponseObject = "application/json"), (ResponseEvent = "text/event-stream"))),
        (status = 400, description = "A malformed or incomplete request (the field in `param`)", body = ErrorBody),
        (status = 401, description = "A missing or wrong API key", body = ErrorBody),
        (status = 429, description = "A per-credential limit was reached (`rate_limited`: LETTA_BRIDGE_USER_RATE, LETTA_BRIDGE_CLIENT_RATE) or the connect rate; retry after `Retry-After` seconds", body = ErrorBody),
        (status = 403, description = "The token may not send to this agent or conversation", body = ErrorBody),
        (status = 404, description = "An unknown agent (`model_not_found`) or runtime", body = ErrorBody),
        (status = 409, description = "The agent is on several runtimes, or its turn stopped at a tool approval with LETTA_BRIDGE_OPENAI_APPROVALS=fail", body = ErrorBody),
        (status = 413, description = "The body is over LETTA_BRIDGE_MAX_BODY_BYTES", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 502, description = "The runtime disconnected, or the turn ended with an error", body = ErrorBody),
        (status = 503, description = "No runtime online (or not the agent's), or no room for the turn; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
        (status = 504, description = "The turn did not end within LETTA_BRIDGE_MAX_WAIT_TIMEOUT", body = ErrorBody)))]
pub(super) async fn create_response(
    State(state): State<AppState>,
    client: Result<Client, ApiError>,
    headers: HeaderMap,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, OpenAiError> {
    let Client(role) = client?;
    let asked = request::parse(super::request::json_body(body)?)?;
    // A streamed answer is an open stream: it takes its place first.
    let slot = if asked.stream { Some(state.limits.stream(&role)?) } else { None };
    let begun = turn::begin(&state, role, &headers, &asked.model, asked.content)?;
    let turn::Begun { runtime, conversation, run, started, seen } = begun;
    let response = ResponseObject::started("", unix_secs(), &asked.model);
    let letta = LettaTurn {
        runtime_id: runtime,
        conversation_id: conversation,
        request_id: String::new(),
        stop_reason: String::new(),
        cursor: String::new(),
    };
    if asked.stream {
        let events = events::Events { response, message_id: String::new(), letta, sequence: 0 };
        return stream::answer(&state, slot.expect("taken for a stream"), run, started, seen, events).await;
    }
    let finished = run.await?;
    let text = seen.borrow().text().to_owned();
    let id = &finished.request_id;
    let letta = LettaTurn {
        request_id: id.clone(),
        stop_reason: finished.last.stop_reason.clone(),
        cursor: finished.cursor.clone(),
        ..letta
    };
    let response = ResponseObject { id: format!("resp_{id}"), ..response };
    let response = response.finished(&finished, &format!("msg_{id}"), &text, letta);
    Ok(axum::Json(response).into_response())
}
