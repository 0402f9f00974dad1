//! The sockets of Letta's own clients: the relay socket
//! `/v1/environments/{connectionId}/status/ws` (per-socket `seq` the client
//! acks; `control` and `stream` channels) and the App-Server-compatible
//! `/app-server/ws` (one socket, no `seq`; `?runtime=` picks a runtime when
//! several are online). Both carry the runtime's v2 frames both ways; the
//! sockets themselves are the Letta edge's ([`crate::letta::Sockets`]).
//!
//! Auth: `Authorization: Bearer` with the client or admin token (the Letta
//! API key of Letta's clients), or, on the relay path only, a credential in
//! the URL for browsers: `?token=` with the client token (never the admin
//! token: URLs end up in browser history and proxy logs) or `?ticket=` with
//! a stream ticket (the socket then has the role of whoever minted it: the
//! client's, or an end user's). Neither reaches the bridge's log.
//!
//! With an end user's token (or ticket) a socket opens only on a runtime
//! the user may see (else `404`, as the environments API answers), gets
//! only the events of the user's grants, sends only what the user may send,
//! and closes with 4001 (`token_expired`, `token_revoked`) when the token
//! ends.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::super::authorise::device;
use super::super::extract::{self, ApiPath, ApiQuery};
use super::super::openapi::ClientSocketProblems;
use super::super::reauth;
use super::super::{ApiError, AppState, hints};
use super::environments;
use crate::auth::Role;
use crate::letta::{Channel, ClientSocket, Closing, frames};
use crate::runtime::RouteError;
use crate::store::TicketHold;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_relay)).routes(routes!(get_app_server))
}

/// Query of the relay socket.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct RelayParams {
    /// The agent the client works with (informational; placeholders such as `pending` are fine).
    #[param(rename = "agentId")]
    agent_id: Option<String>,
    /// The conversation (informational; `default` is fine).
    #[param(rename = "conversationId")]
    conversation_id: Option<String>,
    /// `control` (no `stream_delta`), `stream`, or absent (everything).
    channel: Option<String>,
    /// The client token (not the admin token), for browsers that cannot
    /// send a header. Ignored when an `Authorization` header is sent.
    token: Option<String>,
    /// A stream ticket from `POST /tickets`, instead (the socket has the
    /// role of whoever minted it: the client's, or an end user's). The
    /// socket holds it: opened again, the ticket closes this socket.
    /// Ignored when a header or `token` is sent.
    ticket: Option<String>,
}

/// Letta's relay socket: the runtime's frames with a per-socket `seq` (ack
/// with `{"type":"ack","seq":n}`), `ping` answered with `pong`, commands
/// (namespaced per socket) to the runtime.
#[utoipa::path(get, path = "/v1/environments/{connection_id}/status/ws", tag = "letta",
    params(("connection_id" = String, Path, description = "The runtime's connection id (or device id)"), RelayParams),
    security(("client" = [])),
    responses((status = 101, description = "Switching to Letta's relay protocol"),
              ClientSocketProblems))]
async fn get_relay(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(connection_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RelayParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (role, hold) = relay_role(&state, &headers, &params).await?;
    let channel = match params.channel.as_deref() {
        None | Some("") => Channel::Both,
        Some("control") => Channel::Control,
        Some("stream") => Channel::Stream,
        Some(other) => return Err(ApiError::BadRequest(format!("channel must be control or stream (got {other:?})"))),
    };
    let device = environments::device_of(&state, &role, &connection_id).await?;
    let ws = ws?;
    tracing::debug!(agent = ?params.agent_id, conversation = ?params.conversation_id, "relay socket");
    let socket = ClientSocket { runtime_id: device.into(), role, channel, sequenced: true, kind: "relay" };
    upgrade(state, ws, socket, hold)
}

/// Query of the App-Server socket.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppServerParams {
    /// The runtime (device id) to drive; needed when several are online.
    runtime: Option<String>,
}

/// An App-Server-compatible socket (Letta's `AppServerClient`): one
/// bidirectional socket, `request_id` correlation, no `seq`.
#[utoipa::path(get, path = "/app-server/ws", tag = "letta", params(AppServerParams), security(("client" = [])),
    responses((status = 101, description = "Switching to the App Server protocol"),
              ClientSocketProblems))]
async fn get_app_server(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<AppServerParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let role = extract::client_role(&state, &headers).await?;
    let ws = ws?;
    let runtime = params.runtime.filter(|r| !r.is_empty());
    let device = match state.runtimes.resolve(runtime.as_deref()) {
        Ok(target) => device(&target),
        // Named but offline: the socket serves it when it is back.
        Err(RouteError::Offline(name)) => name,
        // An end user hears only of the runtimes they may see.
        Err(RouteError::Ambiguous(ids)) if role.user().is_some() => {
            let shown = ids.into_iter().filter(|id| environments::shown(&role, id)).collect();
            return Ok(refuse(ws, RouteError::Ambiguous(shown), hints::base_url(&state.settings, &headers)));
        }
        Err(e) => return Ok(refuse(ws, e, hints::base_url(&state.settings, &headers))),
    };
    if !environments::shown(&role, &device) {
        return Err(ApiError::NotFound(format!("no runtime {device:?}")));
    }
    let socket =
        ClientSocket { runtime_id: device.into(), role, channel: Channel::Both, sequenced: false, kind: "app_server" };
    upgrade(state, ws, socket, None)
}

/// The relay caller's role: a client or admin token (or an end user's) in
/// the header; else the client or an end user's token in `?token=`; else a
/// stream ticket in `?ticket=` (the role of whoever minted it; the socket
/// holds the ticket).
async fn relay_role(
    state: &AppState,
    headers: &HeaderMap,
    params: &RelayParams,
) -> Result<(Role, Option<TicketHold>), ApiError> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return Ok((extract::client_role(state, headers).await?, None));
    }
    if let Some(token) = params.token.as_deref() {
        return match extract::token_role(state, token).await? {
            Role::Admin => Err(ApiError::Unauthorized(
                "the admin token is not accepted in the URL (URLs end up in browser history and proxy logs); send it in the `Authorization: Bearer` header, or use the client token or a ticket from POST /tickets in the URL",
            )),
            role => Ok((role, None)),
        };
    }
    let Some(ticket) = params.ticket.as_deref() else {
        return Err(ApiError::Unauthorized(
            "missing `Authorization: Bearer <client token>` header, `token` or `ticket` query parameter",
        ));
    };
    match state.tickets.open(ticket).await? {
        Some(hold) => {
            let role = hold.role();
            reauth::refuse_revoked(state, &role).await?;
            Ok((role, Some(hold)))
        }
        None => Err(ApiError::Unauthorized("invalid or expired ticket; get a new one from POST /tickets")),
    }
}

/// Upgrades into a client socket, under LETTA_BRIDGE_MAX_STREAMS. With a
/// ticket's `hold`, the socket ends when the ticket is opened again; an
/// end user's, when the token expires or is revoked.
fn upgrade(
    state: AppState,
    ws: WebSocketUpgrade,
    socket: ClientSocket,
    hold: Option<TicketHold>,
) -> Result<Response, ApiError> {
    let slot = state.limits.stream(&socket.role)?;
    let max = state.settings.max_body_bytes;
    let ending = reauth::ending(&state, &socket.role);
    Ok(ws.max_message_size(max).max_frame_size(max).on_upgrade(move |ws| async move {
        let taken = async {
            match &hold {
                Some(hold) => hold.taken().await,
                None => std::future::pending().await,
            }
        };
        let ended = async {
            match ending {
                Some(ending) => ending.await,
                None => std::future::pending().await,
            }
        };
        let ends = async {
            tokio::select! {
                () = taken => Closing::Taken,
                reason = ended => Closing::Reauth(reason),
            }
        };
        state.client_sockets.serve(ws, socket, ends).await;
        drop(hold);
        drop(slot);
    }))
}

/// Upgrades, says why in an `error` frame (which runtimes exist, when
/// several do), and closes with 1008.
fn refuse(ws: WebSocketUpgrade, e: RouteError, base: String) -> Response {
    let candidates = match &e {
        RouteError::Ambiguous(ids) => ids.clone(),
        _ => Vec::new(),
    };
    let message = match &e {
        RouteError::Ambiguous(_) => {
            format!("several runtimes are online; pass ?runtime=<id>: {}", candidates.join(", "))
        }
        RouteError::NoneOnline => hints::no_runtime(&base),
        other => other.to_string(),
    };
    ws.on_upgrade(move |mut socket| async move {
        let frame = frames::refused(&message, &candidates);
        let _ = socket.send(Message::Text(frame.into())).await;
        let reason = match e {
            RouteError::Ambiguous(_) => "several runtimes are online; pass ?runtime=<id>",
            RouteError::NoneOnline => "no runtime is online",
            _ => "no such runtime",
        };
        let _ =
            socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: Utf8Bytes::from_static(reason) }))).await;
    })
}
