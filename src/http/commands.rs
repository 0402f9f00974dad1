//! Command endpoints: validate a body, pick the runtime, queue the frame on
//! its socket task, and either answer `202` at once, wait for the reply
//! frame with the same `request_id` (`?wait=true`), or, for `input`, follow
//! the turn to its end (`?wait=completion`, see [`super::turn`]).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::timeout;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiPath, ApiQuery, Client, JsonBody};
use super::openapi::CommandProblems;
use super::turn::{Turn, TurnResult};
use super::{ApiError, AppState};
use super::{idempotency, metrics};
use crate::auth::Role;
use crate::protocol::commands::{
    AbortCommand, ApprovalCommand, GenericCommand, InputCommand, SyncCommand, UNANSWERED_COMMANDS, generic_frame,
    requires_admin, typed_frame,
};
use crate::runtime::{Outcome, Scope};

/// Longest a non-waiting command waits for its frame to reach the socket.
const WRITE_WAIT: Duration = Duration::from_secs(15);

pub fn routes() -> OpenApiRouter<super::AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_input))
        .routes(routes!(post_sync))
        .routes(routes!(post_abort))
        .routes(routes!(post_approval))
        .routes(routes!(post_command))
        .routes(routes!(post_runtime_input))
        .routes(routes!(post_runtime_sync))
        .routes(routes!(post_runtime_abort))
        .routes(routes!(post_runtime_approval))
        .routes(routes!(post_runtime_command))
}

/// Query parameters of the command endpoints other than input and approval.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommandParams {
    /// Runtime id to send to; needed when several runtimes are online.
    runtime: Option<String>,
    /// `true`: hold the request until the runtime's reply with the same
    /// `request_id` arrives (`sync_response`, `*_response`).
    wait: Option<bool>,
    /// With `wait=true`: how long to wait, in milliseconds (100 to 3600000;
    /// default 30000; capped by LETTA_BRIDGE_MAX_WAIT_TIMEOUT).
    #[param(minimum = 100, maximum = 3_600_000)]
    timeout_ms: Option<u64>,
}

/// Query parameters of `POST /input` and `POST /approval`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InputParams {
    /// Runtime id to send to; needed when several runtimes are online.
    runtime: Option<String>,
    /// `true`: hold the request until the runtime's `input_accepted`.
    /// `completion`: hold it until the turn finishes, and answer with the
    /// assembled assistant text, the stop reason and the turn's event ids.
    #[param(inline)]
    wait: Option<Wait>,
    /// With `wait`: how long to wait, in milliseconds (100 to 3600000;
    /// default 30000; capped by LETTA_BRIDGE_MAX_WAIT_TIMEOUT).
    #[param(minimum = 100, maximum = 3_600_000)]
    timeout_ms: Option<u64>,
}

/// What a command request waits for (`completion` only on input frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Answer `202` at once.
    False,
    /// The runtime's `input_accepted`.
    True,
    /// The end of the turn (`turn_finished`).
    Completion,
}

/// Query parameters of the `/runtimes/{id}/…` command endpoints (the runtime
/// is in the path). Documentation only: they are read as [`CommandParams`].
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct WaitParams {
    /// `true`: hold the request until the runtime's reply with the same
    /// `request_id` arrives (`sync_response`, `*_response`).
    wait: Option<bool>,
    /// With `wait=true`: how long to wait, in milliseconds (100 to 3600000;
    /// default 30000; capped by LETTA_BRIDGE_MAX_WAIT_TIMEOUT).
    #[param(minimum = 100, maximum = 3_600_000)]
    timeout_ms: Option<u64>,
}

/// Query parameters of `/runtimes/{id}/input` and `/runtimes/{id}/approval`.
/// Documentation only: they are read as [`InputParams`].
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct InputWaitParams {
    /// `true`: hold the request until the runtime's `input_accepted`.
    /// `completion`: hold it until the turn finishes, and answer with the
    /// assembled assistant text, the stop reason and the turn's event ids.
    #[param(inline)]
    wait: Option<Wait>,
    /// With `wait`: how long to wait, in milliseconds (100 to 3600000;
    /// default 30000; capped by LETTA_BRIDGE_MAX_WAIT_TIMEOUT).
    #[param(minimum = 100, maximum = 3_600_000)]
    timeout_ms: Option<u64>,
}

/// What every command endpoint's query asks for.
struct Request {
    runtime: Option<String>,
    wait: Wait,
    timeout_ms: Option<u64>,
}

impl From<CommandParams> for Request {
    fn from(p: CommandParams) -> Self {
        let wait = if p.wait.unwrap_or(false) { Wait::True } else { Wait::False };
        Self { runtime: p.runtime, wait, timeout_ms: p.timeout_ms }
    }
}

impl From<InputParams> for Request {
    fn from(p: InputParams) -> Self {
        Self { runtime: p.runtime, wait: p.wait.unwrap_or(Wait::False), timeout_ms: p.timeout_ms }
    }
}

/// Bounds of `timeout_ms`.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=3_600_000;

/// The `Idempotency-Key` header of command endpoints.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only: the header is read by `idempotency::key`
pub struct IdempotencyKey {
    /// A repeat with the same key within LETTA_BRIDGE_IDEMPOTENCY_WINDOW
    /// returns the first answer (with `Idempotent-Replayed: true`) and sends
    /// nothing; the same key with a different request is 422. 1-255 visible
    /// ASCII characters.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// A command was queued and written to the runtime's socket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The frame's `request_id` (yours, or generated).
    pub request_id: String,
    /// The runtime it went to.
    pub runtime_id: String,
    /// The frame's `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event id at acceptance: `GET /events` with `Last-Event-ID` set to it
    /// yields everything that happened after this command was accepted.
    pub cursor: String,
}

/// What a `200` carries: the runtime's reply (`wait=true`) or, for input
/// commands with `wait=completion`, the finished turn.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum Replied {
    Reply(ReplyFrame),
    Turn(TurnResult),
}

/// A runtime reply frame (e.g. `input_accepted`, `sync_response`), as sent by
/// the runtime plus `runtime_id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyFrame {
    #[serde(rename = "type")]
    pub kind: String,
    pub request_id: String,
    pub runtime_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

macro_rules! typed_handlers {
    ($(($plain:ident, $routed:ident, $path:literal, $rpath:literal, $body:ty, $doc_body:ty, $params:ty, $rparams:ty, $replied:ty, $summary:literal)),* $(,)?) => {$(
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "commands", params($params, IdempotencyKey), request_body = $doc_body,
            security(("client" = [])),
            responses((status = 202, description = "Written to the runtime's socket", body = Accepted),
                      (status = 200, description = "wait=true: the runtime's reply; wait=completion (input and approval): the finished turn", body = $replied),
                      CommandProblems))]
        async fn $plain(
            State(state): State<AppState>,
            Client(role): Client,
            headers: HeaderMap,
            ApiQuery(params): ApiQuery<$params>,
            JsonBody(body): JsonBody<$body>,
        ) -> Result<Response, ApiError> {
            let frame = typed_frame(&body)?;
            once(&state, &headers, $path, None, &body, || send(&state, role, None, params.into(), frame)).await
        }

        #[doc = $summary]
        #[doc = " (to the runtime named in the path)"]
        #[utoipa::path(post, path = $rpath, tag = "commands",
            params(("id" = String, Path, description = "Runtime id (its deviceId)"), $rparams, IdempotencyKey),
            request_body = $doc_body, security(("client" = [])),
            responses((status = 202, description = "Written to the runtime's socket", body = Accepted),
                      (status = 200, description = "wait=true: the runtime's reply; wait=completion (input and approval): the finished turn", body = $replied),
                      CommandProblems))]
        async fn $routed(
            State(state): State<AppState>,
            Client(role): Client,
            headers: HeaderMap,
            ApiPath(id): ApiPath<String>,
            ApiQuery(params): ApiQuery<$params>,
            JsonBody(body): JsonBody<$body>,
        ) -> Result<Response, ApiError> {
            let frame = typed_frame(&body)?;
            once(&state, &headers, $path, Some(&id), &body, || send(&state, role, Some(id.clone()), params.into(), frame)).await
        }
    )*};
}

typed_handlers! {
    (post_input, post_runtime_input, "/input", "/runtimes/{id}/input", InputCommand, InputCommand, InputParams, InputWaitParams, Replied, "Send a message (or an approval) to the agent: a v2 `input` frame."),
    (post_sync, post_runtime_sync, "/sync", "/runtimes/{id}/sync", SyncCommand, SyncCommand, CommandParams, WaitParams, ReplyFrame, "Ask the runtime to replay its state (`sync`)."),
    (post_abort, post_runtime_abort, "/abort", "/runtimes/{id}/abort", AbortCommand, AbortCommand, CommandParams, WaitParams, ReplyFrame, "Abort the running turn (`abort_message`)."),
    (post_approval, post_runtime_approval, "/approval", "/runtimes/{id}/approval", ApprovalCommand, ApprovalCommand, InputParams, InputWaitParams, Replied, "Answer an approval request (`input` with an `approval_response` payload)."),
}

/// Send any v2 frame: a JSON object with a string `type`. Commands other
/// than the conversation ones need the admin token.
#[utoipa::path(post, path = "/commands", tag = "commands", params(CommandParams, IdempotencyKey), request_body = GenericCommand,
    security(("client" = [])),
    responses((status = 202, description = "Written to the runtime's socket", body = Accepted),
              (status = 200, description = "wait=true: the runtime's reply", body = ReplyFrame),
              CommandProblems))]
async fn post_command(
    State(state): State<AppState>,
    Client(role): Client,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<CommandParams>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let frame = generic_frame(body.clone())?;
    once(&state, &headers, "/commands", None, &body, || send(&state, role, None, params.into(), frame)).await
}

/// Send any v2 frame to the runtime named in the path.
#[utoipa::path(post, path = "/runtimes/{id}/commands", tag = "commands",
    params(("id" = String, Path, description = "Runtime id (its deviceId)"), WaitParams, IdempotencyKey),
    request_body = GenericCommand, security(("client" = [])),
    responses((status = 202, description = "Written to the runtime's socket", body = Accepted),
              (status = 200, description = "wait=true: the runtime's reply", body = ReplyFrame),
              CommandProblems))]
async fn post_runtime_command(
    State(state): State<AppState>,
    Client(role): Client,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<CommandParams>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let frame = generic_frame(body.clone())?;
    once(&state, &headers, "/commands", Some(&id), &body, || send(&state, role, Some(id.clone()), params.into(), frame))
        .await
}

/// Runs a command at most once per `Idempotency-Key`. The request is
/// identified by its endpoint, the runtime named in the path, and the body
/// as the client sent it (before a `request_id` is generated).
async fn once<F: Future<Output = Result<Response, ApiError>>>(
    state: &AppState,
    headers: &HeaderMap,
    endpoint: &str,
    runtime: Option<&str>,
    body: &impl Serialize,
    run: impl FnOnce() -> F,
) -> Result<Response, ApiError> {
    let request = || {
        let body = serde_json::to_string(body).expect("request bodies serialise");
        format!("{endpoint}\n{}\n{body}", runtime.unwrap_or(""))
    };
    let max_wait = state.settings.max_wait_timeout + WRITE_WAIT;
    idempotency::once(&state.idempotency, headers, request, max_wait, run).await
}

/// The `runtime` scope a command names, if any.
fn scope_of(frame: &Map<String, Value>) -> Option<Scope> {
    let runtime = frame.get("runtime")?;
    Some(Scope {
        agent_id: runtime.get("agent_id")?.as_str()?.to_owned(),
        conversation_id: runtime.get("conversation_id").and_then(Value::as_str).map(str::to_owned),
    })
}

/// The command path shared by every endpoint, counted by type and status.
async fn send(
    state: &AppState,
    role: Role,
    target: Option<String>,
    request: Request,
    frame: Map<String, Value>,
) -> Result<Response, ApiError> {
    let kind = metrics::command_label(frame.get("type").and_then(Value::as_str).unwrap_or_default());
    let result = deliver(state, role, target, request, frame).await;
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status().as_u16(),
    };
    ::metrics::counter!(metrics::COMMANDS, "type" => kind, "status" => status.to_string()).increment(1);
    result
}

async fn deliver(
    state: &AppState,
    role: Role,
    target: Option<String>,
    mut request: Request,
    mut frame: Map<String, Value>,
) -> Result<Response, ApiError> {
    let kind = frame.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
    let request_id = frame.get("request_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    if requires_admin(&kind) && role != Role::Admin {
        return Err(ApiError::Forbidden(if state.auth.has_admin() {
            format!("`{kind}` is a privileged command: it needs the admin token")
        } else {
            format!("`{kind}` is a privileged command and no LETTA_BRIDGE_ADMIN_TOKEN is configured")
        }));
    }
    if let Some(ms) = request.timeout_ms.filter(|ms| !TIMEOUT_MS.contains(ms)) {
        return Err(ApiError::BadRequest(format!("timeout_ms must be between 100 and 3600000 (got {ms})")));
    }
    // Nothing will ever answer these by request_id: wait=true answers 202
    // once written, as without it (their effect shows on GET /events).
    if request.wait == Wait::True && UNANSWERED_COMMANDS.contains(&kind.as_str()) {
        request.wait = Wait::False;
    }
    let wait_for = (request.wait != Wait::False).then(|| {
        let asked = request.timeout_ms.map_or(state.settings.wait_timeout, Duration::from_millis);
        asked.min(state.settings.max_wait_timeout)
    });
    // An empty `?runtime=` names nothing.
    let query = request.runtime.filter(|r| !r.is_empty());
    let target = match (target, query) {
        (Some(path), Some(query)) if path != query => {
            return Err(ApiError::BadRequest(format!("the path names runtime {path:?} but ?runtime= names {query:?}")));
        }
        (path, query) => path.or(query),
    };
    let link = state.runtimes.route(target.as_deref())?;
    // Register (or subscribe) before sending, so that a fast reply cannot be missed.
    let mut turn = None;
    let mut waiting = None;
    match request.wait {
        Wait::False => {}
        Wait::True => {
            waiting = Some(state.runtimes.pending().register(&link.runtime_id, link.generation, &request_id)?)
        }
        Wait::Completion => turn = Some(Turn::start(&state.hub, link.runtime_id.clone(), &mut frame)?),
    }
    let cursor = state.hub.cursor();
    let text = serde_json::to_string(&frame).expect("JSON maps serialise");
    let written = link.send(text, scope_of(&frame))?;
    let deadline = tokio::time::Instant::now() + wait_for.unwrap_or(WRITE_WAIT);
    match tokio::time::timeout_at(deadline, written).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err(ApiError::RuntimeGone(request_id)),
        Err(_) => {
            return Err(ApiError::Timeout(format!("the runtime's socket did not take request {request_id:?} in time")));
        }
    }
    if let Some(turn) = turn {
        let finished = turn.finish(deadline).await?;
        if finished.stop_reason == "error" {
            return Err(ApiError::TurnFailed(Box::new(finished)));
        }
        return Ok(axum::Json(finished).into_response());
    }
    let Some(waiting) = waiting.as_mut() else {
        let accepted = Accepted { request_id, runtime_id: link.runtime_id.to_string(), kind, cursor };
        return Ok((StatusCode::ACCEPTED, axum::Json(accepted)).into_response());
    };
    match timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), waiting.outcome()).await {
        Ok(Outcome::Reply(bytes)) => Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
        Ok(Outcome::Disconnected) => Err(ApiError::RuntimeGone(request_id)),
        Err(_) => Err(ApiError::Timeout(format!("the runtime did not answer request {request_id:?} in time"))),
    }
}
