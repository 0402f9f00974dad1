//! Status endpoints: `GET /status`, `GET /runtimes`, and the unauthenticated
//! probes `GET /healthz` (process up) and `GET /readyz` (a runtime online).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::Client;
use super::openapi::ReadProblems;
use super::{ApiError, AppState};
use crate::hub::HubStats;
use crate::runtime::RuntimeInfo;

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
    pub runtimes: Vec<RuntimeInfo>,
    /// Runtime connections accepted since start.
    pub runtime_connects: u64,
    /// Commands waiting for their reply (`wait=true`).
    pub pending_replies: usize,
    /// Runtime socket tasks running (one per open runtime socket).
    pub runtime_tasks: usize,
    pub events: HubStats,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `not_ready` on `/readyz` with no runtime online.
    pub status: &'static str,
    pub runtimes_online: usize,
}

/// Runtimes, the event log and counters.
#[utoipa::path(get, path = "/status", tag = "status", security(("client" = [])),
    responses((status = 200, body = Status), ReadProblems))]
async fn get_status(State(state): State<AppState>, _client: Client) -> Result<Json<Status>, ApiError> {
    let runtimes = state.runtimes.list().await?;
    let online = runtimes.iter().filter(|r| r.online).count();
    Ok(Json(Status {
        ready: online > 0,
        uptime_secs: state.settings.started.elapsed().as_secs(),
        runtimes_online: online,
        runtimes,
        runtime_connects: state.runtimes.connects(),
        pending_replies: state.runtimes.pending_replies(),
        runtime_tasks: state.runtimes.tasks(),
        events: state.hub.stats(),
    }))
}

/// Every runtime seen since start, online or not.
#[utoipa::path(get, path = "/runtimes", tag = "status", security(("client" = [])),
    responses((status = 200, body = Vec<RuntimeInfo>), ReadProblems))]
async fn get_runtimes(State(state): State<AppState>, _client: Client) -> Result<Json<Vec<RuntimeInfo>>, ApiError> {
    Ok(Json(state.runtimes.list().await?))
}

/// The process is up (no auth).
#[utoipa::path(get, path = "/healthz", tag = "status", responses((status = 200, body = Health)))]
async fn get_healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health { status: "ok", runtimes_online: state.runtimes.online_count() })
}

/// `200` while a runtime is online (its socket open and answering pings), else `503` (no auth).
#[utoipa::path(get, path = "/readyz", tag = "status",
    responses((status = 200, body = Health), (status = 503, description = "No runtime online", body = Health)))]
async fn get_readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let online = state.runtimes.online_count();
    let (code, status) =
        if online > 0 { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "not_ready") };
    (code, Json(Health { status, runtimes_online: online }))
}
