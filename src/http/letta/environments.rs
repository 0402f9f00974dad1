//! Letta's environments API, served from the bridge's runtime registry so
//! that Letta's own clients use the bridge as their router: `GET
//! /v1/environments` (what `letta computers list` and `letta-client`'s
//! `environments.list` read), `GET /v1/environments/{deviceId}`, and `POST
//! /v1/environments/{connectionId}/messages` (a message or approvals, sent
//! as the matching `input` commands, authorised like every other command:
//! [`crate::protocol::Command::authorize`]). The bearer token plays the
//! Letta API key: client and admin tokens work, the runtime token does not.
//! An end user's token sees only the runtimes its scopes may lie on
//! ([`shown`]): the others answer `404`, as if they did not exist.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::super::authorise::authorise;
use super::super::extract::{ApiPath, ApiQuery, Client, JsonBody};
use super::super::openapi::{CommandProblems, ReadProblems};
use super::super::{ApiError, AppState};
use crate::letta::environment::{self, Environment, EnvironmentList};
use crate::letta::messages::SendMessage;
use crate::protocol::Role;
use crate::runtime::{Order, Wait};

/// Most environments per page.
const MAX_LIMIT: usize = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_environments))
        .routes(routes!(get_environment))
        .routes(routes!(post_message))
}

/// Query of `GET /v1/environments`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// `true`: only runtimes connected and answering pings.
    #[param(rename = "onlineOnly", pattern = "^(true|false)?$")]
    online_only: Option<String>,
    /// Page size (1-100, default 50).
    #[param(pattern = "^([1-9][0-9]?|100)?$")]
    limit: Option<String>,
    /// The device id after which the page starts.
    after: Option<String>,
}

/// List the runtimes as Letta environments (`letta computers list`, `letta-client` `environments.list`).
#[utoipa::path(get, path = "/v1/environments", tag = "letta", params(ListParams), security(("client" = [])),
    responses((status = 200, description = "The environments (connected runtimes), one page", body = EnvironmentList), ReadProblems))]
async fn list_environments(
    State(state): State<AppState>,
    Client(role): Client,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<EnvironmentList>, ApiError> {
    let limit =
        match params.limit.as_deref() {
            None | Some("") => 50,
            Some(l) => l.parse::<usize>().ok().filter(|l| (1..=MAX_LIMIT).contains(l)).ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a number from 1 to {MAX_LIMIT} (got {l:?})"))
            })?,
        };
    let online_only = match params.online_only.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("onlineOnly must be true or false (got {other:?})"))),
    };
    let now = environment::now_ms();
    let mut all: Vec<Environment> = state
        .runtimes
        .list()
        .await?
        .iter()
        .filter(|r| params.after.as_deref().is_none_or(|after| r.id.as_str() > after))
        .filter(|r| shown(&role, &r.id))
        .map(|r| Environment::of(r, now))
        .filter(|e| !online_only || e.is_online())
        .collect();
    let has_next_page = all.len() > limit;
    all.truncate(limit);
    Ok(Json(EnvironmentList { connections: all, has_next_page }))
}

/// One runtime as a Letta environment, by its device id.
#[utoipa::path(get, path = "/v1/environments/{device_id}", tag = "letta",
    params(("device_id" = String, Path, description = "The runtime's device id")), security(("client" = [])),
    responses((status = 200, description = "The environment", body = Environment), ReadProblems))]
async fn get_environment(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath(device_id): ApiPath<String>,
) -> Result<Json<Environment>, ApiError> {
    let list = state.runtimes.list().await?;
    let found = list.iter().find(|r| r.id == device_id && shown(&role, &r.id));
    let runtime = found.ok_or_else(|| ApiError::NotFound(format!("no environment {device_id:?}")))?;
    Ok(Json(Environment::of(runtime, environment::now_ms())))
}

/// What `POST …/messages` answers: the command(s) were written to the
/// runtime's socket (the turn's events follow on the stream).
#[derive(Debug, Serialize, ToSchema)]
pub struct SendMessageResult {
    /// Always true (errors are problem answers).
    pub success: bool,
    /// What was sent.
    pub message: String,
}

/// Send a message or approvals to a runtime, by its connection id (`letta-client` `environments.sendMessage`).
#[utoipa::path(post, path = "/v1/environments/{connection_id}/messages", tag = "letta",
    params(("connection_id" = String, Path, description = "The runtime's connection id (or device id)")),
    request_body = SendMessage, security(("client" = [])),
    responses((status = 200, description = "The message was written to the runtime", body = SendMessageResult), CommandProblems))]
async fn post_message(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath(connection_id): ApiPath<String>,
    JsonBody(body): JsonBody<SendMessage>,
) -> Result<Json<SendMessageResult>, ApiError> {
    let device = device_of(&state, &role, &connection_id).await?;
    let commands = body.commands()?;
    // All of them allowed before any is sent.
    for command in &commands {
        authorise(&state, &role, command, &device)?;
    }
    let count = commands.len();
    for command in commands {
        let order =
            Order { runtime: Some(device.clone()), command, wait: Wait::Written, written: None, progress: None };
        state.runtimes.dispatch(order).await?;
    }
    let message = if count == 1 { "sent 1 input".to_owned() } else { format!("sent {count} inputs") };
    Ok(Json(SendMessageResult { success: true, message }))
}

/// Whether `role` sees the runtime `device`: an end user only the runtimes
/// a scope of theirs may lie on (every runtime when a scope names none),
/// as if the others did not exist.
pub(in crate::http) fn shown(role: &Role, device: &str) -> bool {
    role.user().is_none_or(|user| user.grants.on_runtime(device))
}

/// The device a connection id (or a device id) names; `404` when none.
/// An end user gets `404` for a runtime they are not [`shown`].
pub(super) async fn device_of(state: &AppState, role: &Role, connection_id: &str) -> Result<String, ApiError> {
    environment::device_of(&state.runtimes, connection_id)
        .await?
        .filter(|device| shown(role, device))
        .ok_or_else(|| ApiError::NotFound(format!("no environment with connection id {connection_id:?}")))
}
