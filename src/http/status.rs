//! Status endpoints: `GET /status`, `GET /runtimes` (paged by id), and the
//! unauthenticated probes `GET /healthz` (process up: liveness) and `GET
//! /readyz` (this instance can serve: readiness; `?runtimes=N` also asks
//! for runtimes online).
//!
//! An end user's token reads `GET /runtimes` as it reads Letta's
//! environments: only the runtimes its scopes may lie on. `GET /status`
//! (the bridge's counters, every runtime, the cluster's instances) is the
//! operator's: `403` to an end user.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{ApiQuery, Client};
use super::letta;
use super::openapi::ReadProblems;
use super::{ApiError, AppState};
use crate::backend::ClusterStatus;
use crate::hub::HubStats;
use crate::runtime::{RuntimeInfo, RuntimePage};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_status))
        .routes(routes!(get_runtimes))
        .routes(routes!(get_healthz))
        .routes(routes!(get_readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// True while at least one runtime is online.
    pub ready: bool,
    pub uptime_secs: u64,
    pub runtimes_online: usize,
    /// The first 100 runtimes by id (`GET /runtimes` pages through all).
    pub runtimes: Vec<RuntimeInfo>,
    /// When there are more than listed here: the `GET /runtimes` URL of
    /// the next ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtimes_next: Option<String>,
    /// Runtime connections accepted since start.
    pub runtime_connects: u64,
    /// Commands waiting for their reply (`wait=true`) or the end of their turn (`wait=completion`).
    pub pending_replies: usize,
    /// Runtime socket tasks running (one per open runtime socket).
    pub runtime_tasks: usize,
    pub events: HubStats,
    /// In cluster mode: this instance, the cluster's instances and Redis' state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `not_ready` on `/readyz` when this instance cannot serve
    /// (or has fewer runtimes online than `?runtimes=` asks for).
    pub status: &'static str,
    pub runtimes_online: usize,
    /// On `/readyz` when not ready: why — `draining` (shutting down),
    /// `engine_unavailable` (cluster: Redis does not answer or refuses
    /// writes, the shared log is not loaded yet, or the instance fenced
    /// itself), `runtimes` (fewer runtimes online than `?runtimes=` asks
    /// for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Query of `GET /readyz`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadyQuery {
    /// Also require at least this many runtimes online (e.g. `1`). Absent
    /// or 0: ready whenever this instance can serve, runtime or not (what a
    /// load balancer's or Kubernetes' readiness probe wants: a runtime can
    /// only connect to an instance that is in service).
    #[param(pattern = "^([0-9]{1,6})?$")]
    runtimes: Option<String>,
}

/// Runtimes, the event log and counters.
#[utoipa::path(get, path = "/status", tag = "status", security(("client" = [])),
    responses((status = 200, description = "The status of this instance (and of its cluster)", body = Status),
              (status = 403, description = "An end user's token: this is the operator's view", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn get_status(State(state): State<AppState>, Client(role): Client) -> Result<Json<Status>, ApiError> {
    if !role.reads_operations() {
        return Err(ApiError::Forbidden(
            "GET /status is the operator's (the client or admin token); an end user's token reads GET /runtimes".into(),
        ));
    }
    let page = state.runtimes.page(None, DEFAULT_PAGE).await?;
    // Of every runtime, not just the page's: the registry follows the
    // runtimes of other instances too.
    let online = state.runtimes.online_count();
    let runtimes_next = next_page(&page.runtimes, page.more, DEFAULT_PAGE);
    Ok(Json(Status {
        ready: online > 0,
        uptime_secs: state.settings.started.elapsed().as_secs(),
        runtimes_online: online,
        runtimes: page.runtimes,
        runtimes_next,
        runtime_connects: state.runtimes.connects(),
        pending_replies: state.runtimes.pending_replies(),
        runtime_tasks: state.runtimes.tasks(),
        events: state.hub.stats(),
        cluster: state.cluster.as_ref().map(|c| c.status()),
    }))
}

/// Runtimes in one answer of `GET /runtimes` unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 100;

/// Most runtimes in one answer of `GET /runtimes`.
pub const MAX_PAGE: usize = 1000;

/// Query of `GET /runtimes`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RuntimesQuery {
    /// Most runtimes in the answer: 1-1000, default 100.
    #[param(pattern = "^([1-9][0-9]{0,2}|1000)?$")]
    limit: Option<String>,
    /// Only runtimes whose id sorts after this one: the cursor the
    /// `Link: <…>; rel="next"` header of the previous page carries.
    after: Option<String>,
}

/// Every runtime seen (and not yet forgotten), online or not, a page at a time.
///
/// Sorted by id, 100 by default (`limit`, at most 1000). When more follow,
/// the `Link` header names the next page:
/// `</runtimes?limit=100&after=<last id>>; rel="next"`.
#[utoipa::path(get, path = "/runtimes", tag = "status", params(RuntimesQuery), security(("client" = [])),
    responses((status = 200, description = "The runtimes this bridge knows, one page", body = Vec<RuntimeInfo>,
               headers(("Link" = String, description = "`</runtimes?limit=…&after=…>; rel=\"next\"` when more runtimes follow"))),
              ReadProblems))]
async fn get_runtimes(
    State(state): State<AppState>,
    Client(role): Client,
    ApiQuery(query): ApiQuery<RuntimesQuery>,
) -> Result<Response, ApiError> {
    let limit =
        match query.limit.as_deref() {
            None | Some("") => DEFAULT_PAGE,
            Some(l) => l.parse::<usize>().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a number from 1 to {MAX_PAGE} (got {l:?})"))
            })?,
        };
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    let page = match role.user() {
        None => state.runtimes.page(after, limit).await?,
        // Paged after the filter, so that no link names a runtime the user may not see.
        Some(_) => {
            let mut shown: Vec<RuntimeInfo> = state.runtimes.list().await?;
            shown.retain(|r| after.is_none_or(|a| r.id.as_str() > a) && letta::shown(&role, &r.id));
            let more = shown.len() > limit;
            shown.truncate(limit);
            RuntimePage { runtimes: shown, more }
        }
    };
    let next = next_page(&page.runtimes, page.more, limit);
    let mut response = Json(page.runtimes).into_response();
    if let Some(next) = next.and_then(|n| HeaderValue::try_from(format!("<{n}>; rel=\"next\"")).ok()) {
        response.headers_mut().insert(header::LINK, next);
    }
    Ok(response)
}

/// The URL of the page after `runtimes`, when `more` follow.
fn next_page(runtimes: &[RuntimeInfo], more: bool, limit: usize) -> Option<String> {
    let last = runtimes.last().filter(|_| more)?;
    Some(format!("/runtimes?limit={limit}&after={}", query_escape(&last.id)))
}

/// `text` for a query value: unreserved characters as they are, the rest
/// percent-encoded (device ids are `[A-Za-z0-9._:-]`, so this is rare).
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The process is up (no auth): the liveness probe.
#[utoipa::path(get, path = "/healthz", tag = "status", responses((status = 200, description = "The process is up", body = Health)))]
async fn get_healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok", runtimes_online: state.runtimes.online_count(), reason: None })
}

/// `200` while this instance can serve: it is not shutting down, and in a
/// cluster it reaches Redis, has read the shared log and is not fenced —
/// whether or not a runtime is online (the count is in the body). With
/// `?runtimes=N`, also at least N runtimes online (their sockets open and
/// answering pings; in a cluster on any instance). Else `503` (no auth):
/// the readiness probe.
#[utoipa::path(get, path = "/readyz", tag = "status", params(ReadyQuery),
    responses((status = 200, description = "This instance can serve", body = Health),
              (status = 400, description = "`runtimes` is not a number", body = super::Problem, content_type = "application/problem+json"),
              (status = 503, description = "Not ready: `reason` says why", body = Health)))]
async fn get_readyz(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReadyQuery>,
) -> Result<(StatusCode, Json<Health>), ApiError> {
    let wanted = match query.runtimes.as_deref() {
        None | Some("") => 0,
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("runtimes must be a whole number of runtimes (got {n:?})")))?,
    };
    let online = state.runtimes.online_count();
    let reason = if state.draining.is_cancelled() {
        Some("draining")
    } else if state.cluster.as_ref().is_some_and(|c| !c.ready()) {
        Some("engine_unavailable")
    } else if online < wanted {
        Some("runtimes")
    } else {
        None
    };
    let (code, status) = match reason {
        None => (StatusCode::OK, "ok"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
    };
    Ok((code, Json(Health { status, runtimes_online: online, reason })))
}
