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
    /// Commands waiting for their reply (`wait=true`) or the end of their turn (`wait=completion`).
    pub pending_replies: usize,
    /// Runtime socket tasks running (one per open runtime socket).
    pub runtime_tasks: usize,
    pub events: HubStats,
    /// In cluster mode: this instance, the cluster's instances and Redis' state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// This instance's view of its cluster (`LETTA_BRIDGE_CLUSTER_URL`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// This instance's id.
    pub node: String,
    /// The cluster's name.
    pub name: String,
    /// `ok`, or `unavailable` while Redis does not answer.
    pub engine: &'static str,
    /// The instances holding a lease (this one included), as of the last renewal.
    pub instances: Vec<String>,
    /// True once this instance's mirror has read the shared log.
    pub mirror_loaded: bool,
    /// True while this instance has closed its runtime sockets for want of Redis.
    pub fenced: bool,
    /// Events of local runtimes waiting to be appended to the shared log.
    pub append_queue: usize,
}

/// What `/status` and `/readyz` show of a cluster (`src/cluster` implements it).
pub trait ClusterView: Send + Sync + 'static {
    /// The cluster as this instance sees it.
    fn status(&self) -> ClusterStatus;
    /// True while this instance can serve: Redis answers, its mirror is loaded, it is not fenced.
    fn ready(&self) -> bool;
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
        cluster: state.cluster.as_ref().map(|c| c.status()),
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

/// `200` while a runtime is online (its socket open and answering pings; in a
/// cluster: on any instance, and this instance reaches Redis), else `503` (no auth).
#[utoipa::path(get, path = "/readyz", tag = "status",
    responses((status = 200, body = Health), (status = 503, description = "No runtime online", body = Health)))]
async fn get_readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let online = state.runtimes.online_count();
    let serving = state.cluster.as_ref().is_none_or(|c| c.ready());
    let (code, status) =
        if online > 0 && serving { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "not_ready") };
    (code, Json(Health { status, runtimes_online: online }))
}
