//! Letta's environments API, served from the bridge's runtime registry so
//! that Letta's own clients use the bridge as their router: `GET
//! /v1/environments` (what `letta computers list` and `letta-client`'s
//! `environments.list` read), `GET /v1/environments/{deviceId}`, and `POST
//! /v1/environments/{connectionId}/messages` (a message or approvals, sent
//! as the matching `input` commands, authorised like every other command:
//! [`Command::authorize`]). The bearer token plays the Letta API key: client
//! and admin tokens work, the runtime token does not.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::commands::authorise;
use super::extract::{ApiPath, ApiQuery, Client, JsonBody};
use super::openapi::{CommandProblems, ReadProblems};
use super::{ApiError, AppState};
use crate::protocol::Command;
use crate::protocol::bodies::MessageContent;
use crate::runtime::{Order, RuntimeInfo, Wait};

/// How long a runtime counts as answering after its last pong (letta-code's
/// own `isOnline` rule: 120 s).
const HEARTBEAT_WINDOW_MS: u64 = 120_000;

/// Most environments per page.
const MAX_LIMIT: usize = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_environments))
        .routes(routes!(get_environment))
        .routes(routes!(post_message))
}

/// A runtime, as Letta's environments API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The runtime's device id.
    pub id: String,
    /// The device id (the bridge's runtime id).
    pub device_id: String,
    /// Set while the runtime is connected: the id its relay sockets and
    /// messages use (its registration's, else the device id).
    pub connection_id: Option<String>,
    /// Its `connectionName` (else the device id).
    pub connection_name: String,
    /// Always `local`: the bridge has no organisations.
    pub organization_id: String,
    /// Always null.
    pub pod_id: Option<String>,
    /// Unix ms the current connection opened.
    pub connected_at: Option<u64>,
    /// Unix ms of the runtime's last answer to a ping.
    pub last_heartbeat: Option<u64>,
    /// Unix ms it was last seen.
    pub last_seen_at: u64,
    /// Unix ms it was first seen (the earliest time the bridge knows of).
    pub first_seen_at: u64,
    /// What the runtime said of itself at registration.
    pub metadata: EnvironmentMetadata,
}

/// `metadata` of an environment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentMetadata {
    /// `lettaCodeVersion`.
    pub letta_code_version: Option<String>,
    /// `os`.
    pub os: Option<String>,
    /// `nodeVersion`.
    pub node_version: Option<String>,
}

/// A page of environments.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentList {
    /// Sorted by device id.
    pub connections: Vec<Environment>,
    /// True when `after` the last one there are more.
    pub has_next_page: bool,
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
    responses((status = 200, body = EnvironmentList), ReadProblems))]
async fn list_environments(
    State(state): State<AppState>,
    _client: Client,
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
    let now = unix_ms(SystemTime::now());
    let mut all: Vec<Environment> = state
        .runtimes
        .list()
        .await?
        .iter()
        .filter(|r| params.after.as_deref().is_none_or(|after| r.id.as_str() > after))
        .map(|r| environment(r, now))
        .filter(|e| !online_only || e.connection_id.is_some())
        .collect();
    let has_next_page = all.len() > limit;
    all.truncate(limit);
    Ok(Json(EnvironmentList { connections: all, has_next_page }))
}

/// One runtime as a Letta environment, by its device id.
#[utoipa::path(get, path = "/v1/environments/{device_id}", tag = "letta",
    params(("device_id" = String, Path, description = "The runtime's device id")), security(("client" = [])),
    responses((status = 200, body = Environment), ReadProblems))]
async fn get_environment(
    State(state): State<AppState>,
    _client: Client,
    ApiPath(device_id): ApiPath<String>,
) -> Result<Json<Environment>, ApiError> {
    let list = state.runtimes.list().await?;
    let found = list.iter().find(|r| r.id == device_id);
    let runtime = found.ok_or_else(|| ApiError::NotFound(format!("no environment {device_id:?}")))?;
    Ok(Json(environment(runtime, unix_ms(SystemTime::now()))))
}

/// `POST /v1/environments/{connectionId}/messages`: new user messages, or
/// answers to approval requests.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// User messages, or approval answers (each sent as its own `input`).
    #[schema(min_items = 1)]
    pub messages: Vec<EnvironmentMessage>,
    /// The agent (default: the runtime's default agent).
    pub agent_id: Option<String>,
    /// The conversation (default: `default`, the agent's default conversation).
    pub conversation_id: Option<String>,
}

/// One entry of `messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EnvironmentMessage {
    /// Answers to approval requests.
    Approval(ApprovalMessage),
    /// A user message.
    User(UserMessage),
}

/// A user message, as Letta's API takes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserMessage {
    /// Always `user`.
    #[schema(pattern = "^user$")]
    pub role: String,
    /// Text, or a list of content parts such as `{"type":"text","text":"…"}`.
    pub content: MessageContent,
    /// Your id for the message (the runtime echoes it as the `otid` of its `user_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// Letta's own message id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otid: Option<String>,
}

/// Answers to approval requests.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApprovalMessage {
    /// Always `approval`.
    #[serde(rename = "type")]
    #[schema(pattern = "^approval$")]
    pub kind: String,
    /// One answer per tool call.
    #[schema(min_items = 1)]
    pub approvals: Vec<EnvironmentApproval>,
}

/// The answer to one tool call's approval request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EnvironmentApproval {
    /// The tool call (its approval request is `perm-<tool_call_id>`).
    #[schema(min_length = 1)]
    pub tool_call_id: String,
    /// Run it, or not.
    pub approve: bool,
    /// Why not (the agent sees it).
    pub reason: Option<String>,
    /// Run it with this input instead.
    pub updated_input: Option<Map<String, Value>>,
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
    responses((status = 200, body = SendMessageResult), CommandProblems))]
async fn post_message(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath(connection_id): ApiPath<String>,
    JsonBody(body): JsonBody<SendMessage>,
) -> Result<Json<SendMessageResult>, ApiError> {
    let device = device_of(&state, &connection_id).await?;
    let runtime = json!({
        "agent_id": body.agent_id.filter(|a| !a.is_empty()),
        "conversation_id": body.conversation_id.filter(|c| !c.is_empty()).unwrap_or_else(|| "default".into()),
    });
    let commands =
        input_frames(body.messages, &runtime)?.into_iter().map(Command::new).collect::<Result<Vec<_>, _>>()?;
    // All of them allowed before any is sent.
    for command in &commands {
        authorise(&state, role, command)?;
    }
    let count = commands.len();
    for command in commands {
        let order = Order { runtime: Some(device.clone()), command, wait: Wait::Written };
        state.runtimes.dispatch(order).await?;
    }
    let message = if count == 1 { "sent 1 input".to_owned() } else { format!("sent {count} inputs") };
    Ok(Json(SendMessageResult { success: true, message }))
}

/// The device a connection id (or a device id) names.
pub(super) async fn device_of(state: &AppState, connection_id: &str) -> Result<String, ApiError> {
    if let Some(device) = state.runtimes.device_of_connection(connection_id).await? {
        return Ok(device.to_string());
    }
    let known = state.runtimes.list().await?.iter().any(|r| r.id == connection_id);
    if known {
        Ok(connection_id.to_owned())
    } else {
        Err(ApiError::NotFound(format!("no environment with connection id {connection_id:?}")))
    }
}

/// The `input` frames for a message body: one `create_message` with the
/// user messages (if any), then one `approval_response` per approval.
fn input_frames(messages: Vec<EnvironmentMessage>, runtime: &Value) -> Result<Vec<Map<String, Value>>, ApiError> {
    let mut users = Vec::new();
    let mut frames = Vec::new();
    for message in messages {
        match message {
            EnvironmentMessage::User(user) if user.role != "user" => {
                return Err(ApiError::Invalid(format!("a message's role must be `user` (got {:?})", user.role)));
            }
            EnvironmentMessage::User(user) => users.push(user),
            EnvironmentMessage::Approval(approval) if approval.kind != "approval" => {
                return Err(ApiError::Invalid(format!(
                    "an approval message's type must be `approval` (got {:?})",
                    approval.kind
                )));
            }
            EnvironmentMessage::Approval(approval) => {
                for a in approval.approvals {
                    if a.tool_call_id.is_empty() {
                        return Err(ApiError::Invalid("each approval needs a `tool_call_id`".into()));
                    }
                    let decision = match (a.approve, a.updated_input) {
                        (true, Some(input)) => json!({"behavior": "allow", "updated_input": input}),
                        (true, None) => json!({"behavior": "allow"}),
                        (false, _) => {
                            json!({"behavior": "deny", "message": a.reason.as_deref().unwrap_or("Denied by the user")})
                        }
                    };
                    let request_id = format!("perm-{}", a.tool_call_id);
                    frames.push(frame(
                        runtime,
                        json!({"kind": "approval_response", "request_id": request_id, "decision": decision}),
                    ));
                }
            }
        }
    }
    if !users.is_empty() {
        frames.insert(0, frame(runtime, json!({"kind": "create_message", "messages": users})));
    }
    if frames.is_empty() {
        return Err(ApiError::Invalid("messages must hold at least one message".into()));
    }
    Ok(frames)
}

fn frame(runtime: &Value, payload: Value) -> Map<String, Value> {
    let Value::Object(frame) = json!({"type": "input", "runtime": runtime, "payload": payload}) else { unreachable!() };
    frame
}

/// A runtime as an environment at `now`.
fn environment(r: &RuntimeInfo, now: u64) -> Environment {
    let ms = |t: &Option<String>| t.as_deref().and_then(|t| humantime::parse_rfc3339(t).ok()).map(unix_ms);
    let connected_at = ms(&r.online_since);
    let last_heartbeat = ms(&r.last_pong_at).or(connected_at);
    let answering = r.online && last_heartbeat.is_some_and(|h| now.saturating_sub(h) < HEARTBEAT_WINDOW_MS);
    let seen = [connected_at, last_heartbeat, ms(&r.offline_since)];
    Environment {
        id: r.id.clone(),
        device_id: r.id.clone(),
        connection_id: answering.then(|| r.connection_id.clone().unwrap_or_else(|| r.id.clone())),
        connection_name: r.connection_name.clone().unwrap_or_else(|| r.id.clone()),
        organization_id: "local".into(),
        pod_id: None,
        connected_at,
        last_heartbeat,
        last_seen_at: seen.iter().flatten().copied().max().unwrap_or(now),
        first_seen_at: seen.iter().flatten().copied().min().unwrap_or(now),
        metadata: EnvironmentMetadata {
            letta_code_version: r.version.clone(),
            os: r.os.clone(),
            node_version: r.node_version.clone(),
        },
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(v: Value) -> Vec<EnvironmentMessage> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn approvals_become_approval_responses_to_their_permission_requests() {
        let runtime = json!({"agent_id": "a", "conversation_id": "c"});
        let body = messages(json!([{"type": "approval", "approvals": [
            {"tool_call_id": "t1", "approve": true},
            {"tool_call_id": "t2", "approve": false, "reason": "no"}
        ]}]));
        let frames = input_frames(body, &runtime).unwrap();
        assert_eq!(
            frames[0]["payload"],
            json!({"kind": "approval_response", "request_id": "perm-t1", "decision": {"behavior": "allow"}})
        );
        assert_eq!(frames[1]["payload"]["decision"], json!({"behavior": "deny", "message": "no"}));
        let text = messages(json!([{"role": "user", "content": "hi", "client_message_id": "m1"}]));
        let frames = input_frames(text, &runtime).unwrap();
        assert_eq!(frames[0]["payload"]["kind"], "create_message");
        assert_eq!(
            frames[0]["payload"]["messages"][0],
            json!({"role": "user", "content": "hi", "client_message_id": "m1"})
        );
        assert!(input_frames(messages(json!([{"role": "system", "content": "x"}])), &runtime).is_err());
        assert!(input_frames(Vec::new(), &runtime).is_err());
        assert!(serde_json::from_value::<Vec<EnvironmentMessage>>(json!([{}])).is_err(), "neither shape");
    }

    #[test]
    fn every_frame_a_message_body_becomes_is_one_a_client_token_may_send() {
        let runtime = json!({"agent_id": null, "conversation_id": "default"});
        let body = messages(json!([
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "client_message_id": "m1", "otid": "o1"},
            {"type": "approval", "approvals": [
                {"tool_call_id": "t1", "approve": true, "updated_input": {"command": "ls"}},
                {"tool_call_id": "t2", "approve": false, "reason": "no"}
            ]}
        ]));
        for frame in input_frames(body, &runtime).unwrap() {
            let command = Command::new(frame).unwrap();
            assert_eq!(command.authorize(crate::protocol::Role::Client), Ok(()), "{}", command.to_text());
        }
    }
}
