//! `GET /metrics`: Prometheus text format. Counters are recorded where things
//! happen (commands, resumes, resets, lags, request latency); gauges and
//! totals that state already knows (runtimes, subscribers, events, pending
//! replies) are read at scrape time, so the event hot path records nothing.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::ApiError;
use super::AppState;
use super::extract::Client;
use super::openapi::ReadProblems;
use crate::protocol::commands::CONVERSATION_COMMANDS;

use crate::metrics as names;
pub use crate::metrics::{COMMANDS, LAGGED, REPLAY_HITS, REQUEST_SECONDS, RESETS};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_metrics))
}

/// The process-wide recorder (a process has one, whatever the number of apps in it).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), &buckets)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be incomplete");
        }
        spawn_upkeep(handle.clone());
        handle
    })
}

/// How often the recorder's histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the recorded histogram samples into their buckets every
/// [`UPKEEP_EVERY`], on a thread of its own for the process-wide recorder.
///
/// `build_recorder` leaves this to the caller: each observation is queued
/// until the next upkeep or scrape, so a bridge nobody scrapes kept every
/// request's latency, ~20 bytes per `POST /input` (RSS +1 MB a minute at
/// 1,000 inputs/s, found by the bench's `soak` and heaptrack; flat with it).
/// A thread, not a task: the recorder outlives any one runtime (tests run
/// several in a process), and this one sleeps.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).stack_size(64 * 1024).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; latency samples are kept until /metrics is scraped");
    }
}

/// Installs the recorder and describes every metric (call once at start).
pub fn init() {
    handle();
    names::describe();
    // Present from the start, at zero.
    metrics::counter!(REPLAY_HITS).increment(0);
    metrics::counter!(LAGGED).increment(0);
}

/// The `type` label of a command: conversation commands by name, the rest
/// as `other` (free-form types must not grow the label set without bound).
pub fn command_label(kind: &str) -> &'static str {
    CONVERSATION_COMMANDS.iter().find(|c| **c == kind).copied().unwrap_or("other")
}

/// Records each routed request's latency (to the response head; SSE streams
/// count until their headers are sent).
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    // With traces on, the request span's name and route (known only here).
    crate::telemetry::routed(req.method().as_str(), &route);
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(REQUEST_SECONDS, "method" => method, "route" => route, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "status", security(("client" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
              (status = 403, description = "An end user's token: this is the operator's view", body = super::Problem, content_type = "application/problem+json"),
              ReadProblems))]
async fn get_metrics(State(state): State<AppState>, Client(role): Client) -> Result<impl IntoResponse, ApiError> {
    if !role.reads_operations() {
        return Err(ApiError::Forbidden(
            "GET /metrics is the operator's (the client or admin token), not an end user's".into(),
        ));
    }
    let hub = state.hub.stats();
    metrics::gauge!(names::RUNTIMES_ONLINE).set(state.runtimes.online_count() as f64);
    metrics::counter!(names::RUNTIME_CONNECTS).absolute(state.runtimes.connects());
    metrics::counter!(names::EVENTS_PUBLISHED).absolute(hub.events_published);
    metrics::gauge!(names::SSE_SUBSCRIBERS).set(hub.subscribers as f64);
    metrics::gauge!(names::REPLAY_EVENTS).set(hub.replay_events as f64);
    metrics::gauge!(names::REPLAY_BYTES).set(hub.replay_bytes as f64);
    metrics::gauge!(names::PENDING_REPLIES).set(state.runtimes.pending_replies() as f64);
    metrics::gauge!(names::RUNTIME_TASKS).set(state.runtimes.tasks() as f64);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle().render()))
}
