//! Turns that outlive a request: `GET /turns/{id}` (`202` while the turn
//! runs, then the answer its `?wait=completion` request would have given)
//! and `GET /turns` (the finished ones, newest first, for polling
//! triggers). Who may read which turn is the one privilege decision
//! ([`Role::reads_turn`]); an unreadable turn is as unknown as a missing
//! one (`404`). The turns come from the turn store ([`TurnStore`]: memory,
//! or a cluster's Redis, so any instance answers); how they get there:
//! [`follow`].

mod follow;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use follow::{Followers, Prefer, follow, prefers_async};

use super::extract::{ApiPath, ApiQuery, Client};
use super::openapi::{ReadProblems, TurnProblems};
use super::{ApiError, AppState, Problem};
use crate::protocol::Role;
use crate::protocol::access::TurnScope;
use crate::protocol::turn::TurnResult;
use crate::store::{Position, TurnRecord};

/// Seconds a poller should wait before asking again about a running turn.
pub const POLL_AFTER_SECS: u32 = 5;

/// Turns a page of `GET /turns` lists by default.
const DEFAULT_LIMIT: usize = 50;
/// Most turns a page of `GET /turns` lists.
const MAX_LIMIT: usize = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_turn)).routes(routes!(list_turns))
}

/// Where a turn is polled.
pub fn location(id: &str) -> String {
    format!("/turns/{id}")
}

/// Adds `Location` and `Retry-After` to a `202` whose body is a running
/// turn's (an `Idempotency-Key`'s replay keeps the body only).
pub fn poll_again(answer: &mut Response, body: &[u8]) {
    let Ok(running) = serde_json::from_slice::<Value>(body) else { return };
    let Some(location) = running["location"].as_str().filter(|l| l.starts_with("/turns/")) else { return };
    let Ok(location) = HeaderValue::from_str(location) else { return };
    answer.headers_mut().insert(header::LOCATION, location);
    answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(POLL_AFTER_SECS));
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Unix milliseconds as RFC 3339.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A turn still running: what `202` answers carry.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnRunning {
    /// The bridge's id of the turn (`tn_…`).
    pub id: String,
    /// Always `running`.
    pub status: &'static str,
    /// Where to poll it: `GET` this path (the `Location` header's value).
    pub location: String,
    /// The input frame's `request_id`.
    pub request_id: String,
    /// The runtime the turn runs on.
    pub runtime_id: String,
    /// The frame's `type`: always `input` (so that the `202` of
    /// `POST /input` reads as an `Accepted` too).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The agent of the input's scope.
    pub agent_id: String,
    /// The conversation of the input's scope.
    pub conversation_id: Option<String>,
    /// Event id just before the input was sent: `GET /events` with
    /// `Last-Event-ID` set to it streams the turn as it happens.
    pub cursor: String,
    /// When the turn started (RFC 3339).
    pub started_at: String,
}

impl TurnRunning {
    fn of(record: &TurnRecord) -> Self {
        Self {
            id: record.id.clone(),
            status: "running",
            location: location(&record.id),
            request_id: record.request_id.clone(),
            runtime_id: record.runtime_id.clone(),
            kind: "input",
            agent_id: record.agent_id.clone(),
            conversation_id: record.conversation_id.clone(),
            cursor: record.cursor.clone(),
            started_at: rfc3339(record.started_at),
        }
    }
}

/// A finished turn, as `GET /turns` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnEntry {
    /// The bridge's id of the turn (`tn_…`): stable, unique, for deduplication.
    pub id: String,
    /// The status `GET /turns/{id}` answers with: `200` with `turn`, or a
    /// problem's (`502` turn-failed, `504`, …) with `problem`.
    pub status: u16,
    /// The input frame's `request_id`.
    pub request_id: String,
    /// The runtime the turn ran on.
    pub runtime_id: String,
    /// The agent of the input's scope.
    pub agent_id: String,
    /// The conversation of the input's scope.
    pub conversation_id: Option<String>,
    /// When the turn started (RFC 3339).
    pub started_at: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// With `status: 200`: the turn, as `?wait=completion` answers it.
    #[schema(value_type = Option<TurnResult>)]
    pub turn: Option<Value>,
    /// Otherwise: the problem the request would have answered.
    #[schema(value_type = Option<Problem>)]
    pub problem: Option<Value>,
}

/// A page of `GET /turns`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnList {
    /// Finished turns, newest first.
    pub turns: Vec<TurnEntry>,
    /// The cursor to poll on with (`after=`): after the newest turn listed
    /// when the page is full (more may follow at once), else after the
    /// newest turn finished so far.
    pub next: String,
}

/// The query of `GET /turns`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A cursor from an earlier page's `next`: only turns that finished
    /// after it, the earliest `limit` of them (listed newest first), so that
    /// polling with each `next` in turn misses none. Without it: the newest
    /// `limit` (an empty `after=`, as low-code tools send an unset field,
    /// is the same). `<epoch>-<n>`; anything else is a `400`. A cursor from before
    /// the bridge's turns were lost (a restart of an embedded bridge, a
    /// cluster's Redis without its data) lists from the earliest turn kept.
    #[param(pattern = "^([0-9A-Za-z]{1,32}-[0-9]{1,19})?$")]
    after: Option<String>,
    /// Most turns to list (1 to 100; default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// A turn followed by `?wait=completion`: `202` while it runs, then the
/// answer of the request.
#[utoipa::path(get, path = "/turns/{id}", tag = "turns", security(("client" = [])),
    params(("id" = String, Path, description = "The turn's id (`tn_…`), from a `202`'s `Location` or a turn's `id`")),
    responses(
        (status = 200, description = "The turn ended: the body a synchronous `?wait=completion` answers (or `stop_reason: \"requires_approval\"` with the pending `approval`)", body = TurnResult),
        (status = 202, description = "The turn is still running; ask again after `Retry-After` seconds", body = TurnRunning,
            headers(("Retry-After" = u32, description = "Seconds to wait before polling again"),
                    ("Location" = String, description = "This turn's URL again (`/turns/{id}`), as asynchronous-pattern pollers expect"))),
        (status = 502, description = "The turn ended as its request would have: the runtime disconnected, or the turn ended with `stop_reason: \"error\"` (`turn-failed`, the turn under `turn`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The bridge instance following the turn stopped before it ended, or the shared store is unavailable", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The turn did not finish within its `timeout_ms`", body = Problem, content_type = "application/problem+json"),
        TurnProblems))]
async fn get_turn(
    State(state): State<AppState>,
    Client(role): Client,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::NotFound(format!("no turn {id:?} (unknown, not yours, or past its retention)"));
    let record = state.turns.store().get(&id).await?.filter(|r| readable(&role, r)).ok_or_else(unknown)?;
    let Some(finished) = &record.finished else {
        // `Location` again, as the asynchronous pattern of Power Automate
        // and Logic Apps expects on every `202` it polls.
        let body = serde_json::to_vec(&TurnRunning::of(&record)).expect("a running turn serialises");
        let mut answer =
            (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body.clone()).into_response();
        poll_again(&mut answer, &body);
        return Ok(answer);
    };
    let status = StatusCode::from_u16(finished.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if status.is_success() { "application/json" } else { "application/problem+json" };
    let mut answer = (status, [(header::CONTENT_TYPE, content_type)], finished.body.clone()).into_response();
    if let Some(secs) = finished.retry_after {
        answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(answer)
}

/// The finished turns the caller may read, newest first: a polling
/// trigger's feed (deduplicate by `id`, or poll on with `next`).
#[utoipa::path(get, path = "/turns", tag = "turns", security(("client" = [])), params(ListParams),
    responses((status = 200, description = "Finished turns, newest first, and the cursor to poll on with", body = TurnList), ReadProblems))]
async fn list_turns(
    State(state): State<AppState>,
    Client(role): Client,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<TurnList>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT} (got {limit})")));
    }
    let after = match params.after.as_deref().filter(|a| !a.is_empty()) {
        Some(cursor) => Some(Position::parse(cursor).ok_or_else(|| {
            ApiError::BadRequest(format!("after must be a cursor from a page's `next` (`<epoch>-<n>`), not {cursor:?}"))
        })?),
        None => None,
    };
    let principal = role.turns_of();
    let listed = state.turns.store().list(principal.as_deref(), after.as_ref(), limit).await?;
    let turns = listed.turns.iter().filter(|r| readable(&role, r)).filter_map(entry).collect();
    Ok(Json(TurnList { turns, next: listed.next.to_cursor() }))
}

/// The one privilege decision, for a kept turn.
fn readable(role: &Role, record: &TurnRecord) -> bool {
    role.reads_turn(TurnScope {
        started_by: &record.principal,
        runtime: &record.runtime_id,
        agent_id: &record.agent_id,
        conversation_id: record.conversation_id.as_deref(),
    })
}

/// A finished turn as listed.
fn entry(record: &TurnRecord) -> Option<TurnEntry> {
    let finished = record.finished.as_ref()?;
    let body: Value = serde_json::from_str(&finished.body).unwrap_or(Value::Null);
    let ok = finished.status == 200;
    Some(TurnEntry {
        id: record.id.clone(),
        status: finished.status,
        request_id: record.request_id.clone(),
        runtime_id: record.runtime_id.clone(),
        agent_id: record.agent_id.clone(),
        conversation_id: record.conversation_id.clone(),
        started_at: rfc3339(record.started_at),
        finished_at: rfc3339(finished.finished_at),
        turn: ok.then(|| body.clone()),
        problem: (!ok).then_some(body),
    })
}
