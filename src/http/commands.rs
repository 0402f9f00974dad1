//! Command endpoints: parse the body and the query, check the caller's
//! role ([`Command::authorize`], before anything else, replays included;
//! for an end user on the runtime the command goes to: [`authorise`]),
//! hand the command to [`Runtimes::dispatch`](crate::runtime::Runtimes::dispatch)
//! and answer with what happened — `202` once written, the runtime's reply
//! (`?wait=true`), or the finished turn (`?wait=completion`; a turn that
//! takes longer than LETTA_BRIDGE_ASYNC_AFTER, or whose request says
//! `Prefer: respond-async`, is answered `202` and polled: [`turns`]).
//!
//! Each handler serves two paths: `/input` (the runtime named by
//! `?runtime=`, or the only one online) and `/runtimes/{id}/input`; the
//! second is documented from the first (`openapi::routed_twins`).

use std::time::Duration;

use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiQuery, Client, JsonBody};
use super::idempotency::{self, IdempotencyKey};
use super::openapi::CommandProblems;
use super::{ApiError, AppState, authorise, hints, metrics, turns};
use crate::protocol::bodies::{AbortCommand, ApprovalCommand, InputCommand, SyncCommand, typed_command};
use crate::protocol::commands::GenericCommand;
use crate::protocol::turn::TurnResult;
use crate::protocol::{Command, Role};
use crate::runtime::{Accepted, Dispatched, Order, WRITE_WAIT, Wait};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_input))
        .routes(routes!(post_sync))
        .routes(routes!(post_abort))
        .routes(routes!(post_approval))
        .routes(routes!(post_command))
        .route("/runtimes/{id}/input", post(post_input))
        .route("/runtimes/{id}/sync", post(post_sync))
        .route("/runtimes/{id}/abort", post(post_abort))
        .route("/runtimes/{id}/approval", post(post_approval))
        .route("/runtimes/{id}/commands", post(post_command))
}

/// The runtime a command goes to: `/runtimes/{id}/…` or `?runtime=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Target {
    /// Runtime id to send to; needed when several runtimes are online.
    runtime: Option<String>,
    /// The id in the path, when the command came by `/runtimes/{id}/…`.
    #[serde(skip)]
    #[param(ignore)]
    path: Option<String>,
}

impl FromRequestParts<AppState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiQuery(mut target) = ApiQuery::<Target>::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("invalid path: {}", e.body_text())))?;
        target.path = params.iter().find(|(name, _)| *name == "id").map(|(_, id)| id.to_owned());
        // An empty `?runtime=` names nothing.
        target.runtime = target.runtime.filter(|r| !r.is_empty());
        if let (Some(path), Some(query)) = (&target.path, &target.runtime)
            && path != query
        {
            return Err(ApiError::BadRequest(format!("the path names runtime {path:?} but ?runtime= names {query:?}")));
        }
        Ok(target)
    }
}

impl Target {
    fn name(&self) -> Option<String> {
        self.path.clone().or_else(|| self.runtime.clone())
    }
}

/// Query parameters of the command endpoints other than input and approval.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommandParams {
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
    /// `true`: hold the request until the runtime's `input_accepted`.
    /// `completion`: hold it until the turn finishes (or stops at a tool
    /// approval request: `stop_reason: "requires_approval"`), and answer with
    /// the assembled assistant text, the stop reason and the turn's event ids
    /// — or, after LETTA_BRIDGE_ASYNC_AFTER (default 25 s) or at once with
    /// `Prefer: respond-async`, `202` with `Location: /turns/{id}` to poll.
    #[param(inline)]
    wait: Option<WaitParam>,
    /// With `wait`: how long to wait, in milliseconds (100 to 3600000;
    /// capped by LETTA_BRIDGE_MAX_WAIT_TIMEOUT); default 30000 for
    /// `wait=true`, LETTA_BRIDGE_MAX_WAIT_TIMEOUT for `wait=completion` (how
    /// long the turn is followed, also after a `202`).
    #[param(minimum = 100, maximum = 3_600_000)]
    timeout_ms: Option<u64>,
}

/// What a command request waits for (`completion` only on input frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitParam {
    /// Answer `202` at once.
    False,
    /// The runtime's `input_accepted`.
    True,
    /// The end of the turn (`turn_finished`).
    Completion,
}

/// Bounds of `timeout_ms`.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=3_600_000;

/// What a `200` carries: the runtime's reply (`wait=true`) or, for input
/// commands with `wait=completion`, the finished turn.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a schema only: replies are passed on as the runtime's bytes
pub enum Replied {
    /// `wait=true`.
    Reply(ReplyFrame),
    /// `wait=completion`.
    Turn(Box<TurnResult>),
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

/// What every command request carries besides its query and body.
pub struct Caller {
    role: Role,
    target: Target,
    key: IdempotencyKey,
    /// This bridge's URL as the caller reaches it (for hints in problems).
    base: String,
    /// `Prefer: respond-async` (RFC 7240).
    prefer_async: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Client(role) = Client::from_request_parts(parts, state).await?;
        let target = Target::from_request_parts(parts, state).await?;
        let key = IdempotencyKey::from_request_parts(parts, state).await?;
        let base = hints::base_url(&state.settings, &parts.headers);
        let prefer_async = turns::prefers_async(&parts.headers);
        Ok(Self { role, target, key, base, prefer_async })
    }
}

/// Send a message (or an approval) to the agent: a v2 `input` frame.
#[utoipa::path(post, path = "/input", tag = "commands", params(Target, InputParams, IdempotencyKey, turns::Prefer),
    request_body = InputCommand, security(("client" = [])),
    responses((status = 202, description = "Written to the runtime's socket. With wait=completion: the turn outlives the request (after LETTA_BRIDGE_ASYNC_AFTER, or at once with `Prefer: respond-async`); poll `Location` (`GET /turns/{id}`); the body adds the `TurnRunning` fields", body = Accepted,
                  headers(("Location" = String, description = "With wait=completion: where to poll the turn, `/turns/{id}`"),
                          ("Retry-After" = u32, description = "With wait=completion: seconds to wait before polling"),
                          ("Preference-Applied" = String, description = "`respond-async` when `Prefer: respond-async` was applied"))),
              (status = 200, description = "wait=true: the runtime's reply; wait=completion: the finished turn, or `stop_reason: \"requires_approval\"` with the pending `approval` when the turn stops to ask for a tool approval", body = Replied),
              CommandProblems))]
async fn post_input(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<InputParams>,
    JsonBody(body): JsonBody<InputCommand>,
) -> Result<Response, ApiError> {
    let command = typed_command(&body)?;
    let wait = input_wait(&state, &params)?;
    send(&state, caller, "/input", &body, command, wait).await
}

/// Answer a tool approval request (a `control_request` event with
/// `request.subtype: "can_use_tool"`): an `input` with an `approval_response`
/// payload whose `request_id` is the `control_request`'s.
#[utoipa::path(post, path = "/approval", tag = "commands", params(Target, InputParams, IdempotencyKey, turns::Prefer),
    request_body = ApprovalCommand, security(("client" = [])),
    responses((status = 202, description = "Written to the runtime's socket. With wait=completion: the turn outlives the request (after LETTA_BRIDGE_ASYNC_AFTER, or at once with `Prefer: respond-async`); poll `Location` (`GET /turns/{id}`); the body adds the `TurnRunning` fields", body = Accepted,
                  headers(("Location" = String, description = "With wait=completion: where to poll the turn, `/turns/{id}`"),
                          ("Retry-After" = u32, description = "With wait=completion: seconds to wait before polling"),
                          ("Preference-Applied" = String, description = "`respond-async` when `Prefer: respond-async` was applied"))),
              (status = 200, description = "wait=true: the runtime's `input_accepted` (`accepted: false` with `error: \"Approval request is no longer pending\"` when the runtime does not wait for that approval); wait=completion: the rest of the turn, to its `turn_finished`, or `stop_reason: \"requires_approval\"` at the next approval request", body = Replied),
              CommandProblems))]
async fn post_approval(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<InputParams>,
    JsonBody(body): JsonBody<ApprovalCommand>,
) -> Result<Response, ApiError> {
    let command = typed_command(&body)?;
    let wait = input_wait(&state, &params)?;
    send(&state, caller, "/approval", &body, command, wait).await
}

/// Ask the runtime to replay its state (`sync`).
#[utoipa::path(post, path = "/sync", tag = "commands", params(Target, CommandParams, IdempotencyKey),
    request_body = SyncCommand, security(("client" = [])),
    responses((status = 202, description = "Written to the runtime's socket", body = Accepted),
              (status = 200, description = "wait=true: the runtime's reply", body = ReplyFrame),
              CommandProblems))]
async fn post_sync(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CommandParams>,
    JsonBody(body): JsonBody<SyncCommand>,
) -> Result<Response, ApiError> {
    let command = typed_command(&body)?;
    let wait = reply_wait(&state, &params)?;
    send(&state, caller, "/sync", &body, command, wait).await
}

/// Abort the running turn (`abort_message`).
#[utoipa::path(post, path = "/abort", tag = "commands", params(Target, CommandParams, IdempotencyKey),
    request_body = AbortCommand, security(("client" = [])),
    responses((status = 202, description = "Written to the runtime's socket", body = Accepted),
              (status = 200, description = "wait=true: the runtime's reply", body = ReplyFrame),
              CommandProblems))]
async fn post_abort(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CommandParams>,
    JsonBody(body): JsonBody<AbortCommand>,
) -> Result<Response, ApiError> {
    let command = typed_command(&body)?;
    let wait = reply_wait(&state, &params)?;
    send(&state, caller, "/abort", &body, command, wait).await
}

/// Send any v2 frame: a JSON object with a string `type`. The client token
/// may send only the command types and fields of its allow-list (docs/api.md,
/// "What a client token may send"); everything else needs the admin token.
#[utoipa::path(post, path = "/commands", tag = "commands", params(Target, CommandParams, IdempotencyKey),
    request_body = GenericCommand, security(("client" = [])),
    responses((status = 202, description = "Written to the runtime's socket", body = Accepted),
              (status = 200, description = "wait=true: the runtime's reply", body = ReplyFrame),
              CommandProblems))]
async fn post_command(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CommandParams>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let command = Command::free_form(body.clone())?;
    let wait = reply_wait(&state, &params)?;
    send(&state, caller, "/commands", &body, command, wait).await
}

/// The wait of `?wait=` on input and approval.
fn input_wait(state: &AppState, params: &InputParams) -> Result<Wait, ApiError> {
    let (reply, turn) = (state.settings.wait_timeout, state.settings.max_wait_timeout);
    Ok(match params.wait.unwrap_or(WaitParam::False) {
        WaitParam::False => {
            deadline(state, params.timeout_ms, reply)?;
            Wait::Written
        }
        WaitParam::True => Wait::Reply(deadline(state, params.timeout_ms, reply)?),
        WaitParam::Completion => Wait::Turn(deadline(state, params.timeout_ms, turn)?),
    })
}

/// The wait of `?wait=` on the other commands.
fn reply_wait(state: &AppState, params: &CommandParams) -> Result<Wait, ApiError> {
    let deadline = deadline(state, params.timeout_ms, state.settings.wait_timeout)?;
    Ok(if params.wait.unwrap_or(false) { Wait::Reply(deadline) } else { Wait::Written })
}

/// When a waiting request gives up: `timeout_ms`, or the default wait,
/// capped by LETTA_BRIDGE_MAX_WAIT_TIMEOUT.
fn deadline(state: &AppState, timeout_ms: Option<u64>, default: Duration) -> Result<Instant, ApiError> {
    if let Some(ms) = timeout_ms.filter(|ms| !TIMEOUT_MS.contains(ms)) {
        return Err(ApiError::BadRequest(format!("timeout_ms must be between 100 and 3600000 (got {ms})")));
    }
    let asked = timeout_ms.map_or(default, Duration::from_millis);
    Ok(Instant::now() + asked.min(state.settings.max_wait_timeout))
}

/// The path every command endpoint shares: the role check, then at most
/// once per `Idempotency-Key` of this caller, dispatch, the answer; counted
/// by type and status.
///
/// The role check comes first, so that no answer — a replay, or one another
/// request with the key is still waiting for — reaches a caller who may not
/// send the command. Keys are the caller's own (scoped by its principal): the
/// same key from another principal is another key.
///
/// A request is identified for its key by its endpoint, the runtime named
/// in the path, and the body as the client sent it (before a `request_id`
/// is generated).
async fn send(
    state: &AppState,
    caller: Caller,
    endpoint: &str,
    body: &impl Serialize,
    command: Command,
    wait: Wait,
) -> Result<Response, ApiError> {
    let kind = metrics::command_label(command.kind());
    let Caller { role, target, key, base, prefer_async } = caller;
    let allowed = authorise::decide(state, &role, &command, target.name(), &base);
    let request = || {
        let body = serde_json::to_string(body).expect("request bodies serialise");
        format!("{endpoint}\n{}\n{body}", target.path.as_deref().unwrap_or(""))
    };
    let max_wait = state.settings.max_wait_timeout + WRITE_WAIT;
    let run = |runtime| async {
        let order = Order { runtime, command, wait, written: None, progress: None };
        if let Wait::Turn(_) = wait {
            return turns::follow(state, role.principal().into_owned(), order, prefer_async, base.clone()).await;
        }
        let dispatched = state.runtimes.dispatch(order).await.map_err(|e| hints::dispatch_error(e, &base))?;
        Ok(answer(dispatched))
    };
    let result = match allowed {
        Ok(runtime) => {
            let run = || run(runtime);
            idempotency::once(&*state.idempotency, key.of(&role.principal()), request, max_wait, run).await
        }
        Err(refused) => Err(refused),
    };
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status().as_u16(),
    };
    ::metrics::counter!(metrics::COMMANDS, "type" => kind, "status" => status.to_string()).increment(1);
    result
}

fn answer(dispatched: Dispatched) -> Response {
    match dispatched {
        Dispatched::Written(accepted) => (StatusCode::ACCEPTED, axum::Json(accepted)).into_response(),
        Dispatched::Reply(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Dispatched::Turn(turn) => axum::Json(turn).into_response(),
    }
}
