//! Endpoints the Letta Code runtime calls: `GET /v1/health`, `POST
//! /v1/environments/register`, the WebSocket (`/ws`, `/ws/{connectionId}`),
//! and `GET /v1/agents/{agent_id}/runtime-status`. All but health need a
//! runtime token; registering and connecting need one that grants the
//! device (the shared token any, a per-device token its own), so that a
//! runtime never takes over another's device.

use axum::Json;
use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiPath, ApiQuery, JsonBody, RuntimeCaller};
use super::openapi::{ReadProblems, RuntimeProblems, UpgradeProblems};
use super::registration::{check_device_id, check_listener_instance_id, check_metadata, check_name};
use super::{ApiError, AppState};
use crate::auth::{RuntimeGrant, bearer};

/// Runtime id used for a direct connection that names no `deviceId`.
pub const DIRECT_DEVICE: &str = "direct";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_health))
        .routes(routes!(post_register))
        .routes(routes!(get_ws))
        .routes(routes!(get_ws_connection))
        .routes(routes!(get_runtime_status))
}

/// The body the runtime registers with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Stable per machine; the runtime's id here.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub device_id: String,
    /// At most 256 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{0,256}$")]
    pub connection_name: Option<String>,
    /// At most 128 characters, no control characters.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{0,128}$")]
    pub listener_instance_id: Option<String>,
    /// `lettaCodeVersion`, `os`, `nodeVersion`, `supported_commands`, …:
    /// each string (at any depth) at most 1,024 bytes, the whole object at
    /// most 16,384 bytes as JSON.
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// Stable for a device while the bridge runs.
    pub connection_id: String,
    /// Where the runtime opens its WebSocket.
    pub ws_url: String,
    /// Always false: one socket per runtime.
    pub supports_split_status_channels: bool,
    /// Always false.
    pub supports_paired_listener_generations: bool,
}

/// Query of the WebSocket upgrade.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct WsParams {
    /// The runtime's device id (`direct` when absent).
    #[param(rename = "deviceId")]
    pub device_id: Option<String>,
    #[param(rename = "connectionName")]
    pub connection_name: Option<String>,
}

/// Liveness for the runtime (no auth).
#[utoipa::path(get, path = "/v1/health", tag = "runtime", responses((status = 200, description = "Up", body = Object)))]
async fn get_health() -> Json<Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Register a runtime; answers the WebSocket URL to connect to.
#[utoipa::path(post, path = "/v1/environments/register", tag = "runtime", request_body = RegisterRequest,
    security(("runtime" = [])),
    responses((status = 200, description = "Registered: where to connect the WebSocket", body = RegisterResponse),
              (status = 403, description = "The runtime token does not grant this deviceId (LETTA_BRIDGE_RUNTIME_TOKENS_FILE)", body = super::Problem, content_type = "application/problem+json"),
              (status = 413, description = "Body over the size limit", body = super::Problem, content_type = "application/problem+json"),
              (status = 415, description = "Content-Type is not JSON", body = super::Problem, content_type = "application/problem+json"),
              (status = 422, description = "Wrong shape (e.g. a bad deviceId), or a field over its limit", body = super::Problem, content_type = "application/problem+json"),
              RuntimeProblems))]
async fn post_register(
    State(state): State<AppState>,
    RuntimeCaller(grant): RuntimeCaller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    check_device_id(&body.device_id)?;
    if !grant.allows(&body.device_id) {
        tracing::info!(device = %body.device_id, "registration refused: the runtime token does not grant this device");
        return Err(ApiError::Forbidden(format!(
            "this runtime token may not register as device {:?}: LETTA_BRIDGE_RUNTIME_TOKENS_FILE grants it other devices",
            body.device_id
        )));
    }
    let name = body.connection_name.map(check_name).transpose()?;
    if let Some(id) = &body.listener_instance_id {
        check_listener_instance_id(id)?;
    }
    if let Some(metadata) = &body.metadata {
        check_metadata(metadata)?;
    }
    let base = ws_base(state.settings.public_url.as_deref(), state.settings.tls, &headers)?;
    let metadata = body.metadata.map(Value::Object);
    let connection_id = state.runtimes.register(&body.device_id, name, metadata.as_ref()).await?;
    tracing::info!(device = %body.device_id, %connection_id, listener = ?body.listener_instance_id, "runtime registered");
    Ok(Json(RegisterResponse {
        ws_url: format!("{base}/ws/{connection_id}"),
        connection_id,
        supports_split_status_channels: false,
        supports_paired_listener_generations: false,
    }))
}

/// The runtime's WebSocket (direct form, no registration needed). A bad or
/// missing token is accepted and then closed with 1008 "unauthorized"; a
/// token that does not grant the `deviceId` with 1008 too.
#[utoipa::path(get, path = "/ws", tag = "runtime", params(WsParams), security(("runtime" = [])),
    responses((status = 101, description = "Switching to the v2 WebSocket protocol"),
              UpgradeProblems))]
async fn get_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<WsParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let device = params.device_id.unwrap_or_else(|| DIRECT_DEVICE.to_owned());
    upgrade(state, &headers, ws?, Ok(device), params.connection_name)
}

/// The runtime's WebSocket at the `wsUrl` handed out by registration. An
/// unknown `connectionId` is closed with 1008 so the runtime registers again.
#[utoipa::path(get, path = "/ws/{connection_id}", tag = "runtime",
    params(("connection_id" = String, Path, description = "From registration"), WsParams),
    security(("runtime" = [])),
    responses((status = 101, description = "Switching to the v2 WebSocket protocol"),
              UpgradeProblems))]
async fn get_ws_connection(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(connection_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<WsParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let device = match (state.runtimes.device_of_connection(&connection_id).await?, params.device_id) {
        (Some(registered), Some(given)) if *registered != *given => Err("deviceId does not match the registration"),
        (Some(registered), _) => Ok(registered.to_string()),
        (None, _) => Err("environment not found; register again"),
    };
    upgrade(state, &headers, ws?, device, params.connection_name)
}

/// Bytes the runtime socket reads per attempt. tungstenite zero-fills this
/// much before every read, including the ones that find nothing (each poll of
/// the socket task): its 128 KiB default cost ~131,000 instructions per
/// command written (measured with callgrind). Larger frames still arrive
/// whole, over several reads.
const READ_CHUNK: usize = 8 * 1024;

/// Why a runtime socket is refused: its close code and reason.
type Refusal = (u16, &'static str);

/// Close reason of a socket whose token does not grant its device.
pub const NOT_THIS_DEVICE: &str = "this runtime token may not connect as this deviceId";

/// Upgrades, then either serves the runtime or closes it: 1008 for a token
/// or device it may not use, 1013 while the registry takes no new device.
///
/// Refused by a close frame rather than a `403` before the upgrade: Letta
/// Code takes 1008 as final for that socket and registers again, where the
/// same token gets a `403` it reports and stops at; an HTTP error on the
/// upgrade would look like a network failure to it, and it would retry the
/// socket for five minutes. Either way the device's online socket is never
/// touched: the refusal comes before [`crate::runtime::Runtimes::serve`].
fn upgrade(
    state: AppState,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
    device: Result<String, &'static str>,
    name: Option<String>,
) -> Result<Response, ApiError> {
    let refusal = refusal(&state, state.auth.runtime_grant(bearer(headers)), &device);
    let presented = bearer(headers).unwrap_or_default().to_owned();
    let name = name.and_then(|n| check_name(n).ok());
    let max = state.settings.max_frame_bytes;
    Ok(ws.max_message_size(max).max_frame_size(max).read_buffer_size(READ_CHUNK).on_upgrade(move |socket| async move {
        match (refusal, device) {
            (None, Ok(device)) => {
                let revoked = state.auth.revoked(presented, device.clone());
                state.runtimes.serve(socket, &device, name, revoked).await
            }
            (why, device) => {
                let (code, reason) = why.unwrap_or((1008, "refused"));
                tracing::info!(device = device.as_deref().unwrap_or(""), code, reason, "runtime socket refused");
                refuse(socket, code, reason).await;
            }
        }
    }))
}

/// Whether a runtime socket for `device` with `grant` is refused, and how.
fn refusal(state: &AppState, grant: Option<RuntimeGrant>, device: &Result<String, &'static str>) -> Option<Refusal> {
    let Some(grant) = grant else { return Some((1008, "unauthorized")) };
    let device = match device {
        Err(why) => return Some((1008, why)),
        Ok(device) => device,
    };
    if check_device_id(device).is_err() {
        return Some((1008, "invalid deviceId"));
    }
    if !grant.allows(device) {
        return Some((1008, NOT_THIS_DEVICE));
    }
    // 1013 "try again later": the runtime reconnects with a backoff.
    state.runtimes.has_room(device).err().map(|_| (1013, "too many runtimes without a socket; try again later"))
}

async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Query of `GET /v1/agents/{agent_id}/runtime-status`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RuntimeStatusParams {
    /// Comma-separated conversation ids.
    conversation_ids: Option<String>,
}

/// What the runtime reads before it recovers a conversation (e.g. after a
/// reconnect): a conversation that is `IDLE` here, with no conflicting
/// listener, is its own to recover. The bridge runs no agents itself, so
/// every conversation asked about is idle on its side.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuntimeStatus {
    pub agent_id: String,
    /// One entry per conversation id asked about.
    pub statuses: Vec<ConversationStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationStatus {
    pub conversation_id: String,
    /// Always `IDLE`: no run of this conversation is active on the bridge.
    #[schema(pattern = "^IDLE$")]
    pub state: &'static str,
    /// Always false: the bridge holds one socket per runtime device.
    pub has_conflicting_listeners: bool,
}

/// Called by the runtime on `sync` and before it recovers a conversation.
#[utoipa::path(get, path = "/v1/agents/{agent_id}/runtime-status", tag = "runtime",
    params(("agent_id" = String, Path, description = "Agent id"), RuntimeStatusParams), security(("runtime" = [])),
    responses((status = 200, description = "The conversations asked about, all idle on the bridge", body = RuntimeStatus), ReadProblems))]
async fn get_runtime_status(
    // Any runtime token: the answer says nothing of any device.
    _runtime: RuntimeCaller,
    ApiPath(agent_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RuntimeStatusParams>,
) -> Json<RuntimeStatus> {
    let ids = params.conversation_ids.unwrap_or_default();
    let statuses = ids
        .split(',')
        .filter(|id| !id.is_empty())
        .take(MAX_STATUS_CONVERSATIONS)
        .map(|id| ConversationStatus {
            conversation_id: id.to_owned(),
            state: "IDLE",
            has_conflicting_listeners: false,
        })
        .collect();
    Json(RuntimeStatus { agent_id, statuses })
}

/// Most conversations one runtime-status answer lists.
const MAX_STATUS_CONVERSATIONS: usize = 100;

/// `ws(s)://host[/prefix]` from LETTA_BRIDGE_PUBLIC_URL, else from `Host`
/// (`wss` when this listener speaks TLS).
fn ws_base(public_url: Option<&str>, tls: bool, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = public_url {
        let url = url.trim_end_matches('/');
        let url = if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            url.to_owned()
        };
        return Ok(url);
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let valid = !host.is_empty() && host.parse::<axum::http::uri::Authority>().is_ok_and(|a| a.as_str() == host);
    if !valid {
        return Err(ApiError::BadRequest("no usable Host header; set LETTA_BRIDGE_PUBLIC_URL".into()));
    }
    Ok(format!("{}://{host}", if tls { "wss" } else { "ws" }))
}
