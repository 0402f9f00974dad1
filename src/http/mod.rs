//! The HTTP surface: the router, its layers, and the state handlers share.
//! Handlers live in one file per concern; they reach runtimes only through
//! `runtime::Runtimes` and events only through `hub::Hub`.

mod access_log;
mod authorise;
mod commands;
mod console;
mod error;
mod events;
mod extract;
mod feeds;
mod hints;
mod idempotency;
mod letta;
mod limits;
mod metrics;
mod openai;
mod openapi;
mod origin;
mod reauth;
mod registration;
mod revocations;
mod runtime_side;
mod status;
mod tickets;
mod turns;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_axum::router::OpenApiRouter;

pub use self::metrics::init as init_metrics;
pub use error::{ApiError, Problem};
pub use extract::parse_json;
pub use limits::Limits;
pub use openapi::ApiDoc;
pub use turns::Followers;

use crate::auth::Auth;
use crate::backend::ClusterView;
use crate::hub::Hub;
use crate::runtime::Runtimes;
use crate::store::{FeedStore, IdempotencyStore, RevocationStore, TicketStore};

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// LETTA_BRIDGE_PUBLIC_URL: the base of the `wsUrl` handed out at registration.
    pub public_url: Option<String>,
    /// True when this listener speaks TLS (the `wsUrl` is then `wss://`).
    pub tls: bool,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive (LETTA_BRIDGE_IDLE_TIMEOUT).
    pub body_timeout: Duration,
    /// Largest WebSocket message accepted from a runtime.
    pub max_frame_bytes: usize,
    /// Interval of SSE keepalive comments.
    pub keepalive: Duration,
    /// When set, event streams end after this long.
    pub max_stream_duration: Option<Duration>,
    /// Default time an awaited command waits.
    pub wait_timeout: Duration,
    /// Longest an awaited command may wait.
    pub max_wait_timeout: Duration,
    /// How long a `?wait=completion` request waits before it answers `202`
    /// (LETTA_BRIDGE_ASYNC_AFTER).
    pub async_after: Duration,
    /// What `POST /v1/chat/completions` does at a tool approval request
    /// (LETTA_BRIDGE_OPENAI_APPROVALS).
    pub openai_approvals: crate::config::OpenAiApprovals,
    /// Browser origins allowed besides the bridge's own.
    pub cors_origins: Arc<[String]>,
    /// When the service started (for `uptime_secs`).
    pub started: Instant,
}

#[cfg(test)]
impl Settings {
    /// Every default, for unit tests.
    pub(crate) fn for_tests() -> Self {
        Self {
            public_url: None,
            tls: false,
            max_body_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(60),
            max_frame_bytes: 16 * 1024 * 1024,
            keepalive: Duration::from_secs(15),
            max_stream_duration: None,
            wait_timeout: Duration::from_secs(30),
            max_wait_timeout: Duration::from_secs(300),
            async_after: Duration::from_secs(25),
            openai_approvals: crate::config::OpenAiApprovals::Deny,
            cors_origins: Arc::from([]),
            started: Instant::now(),
        }
    }
}

/// Shared by every handler; one `Arc`, so the clones each middleware layer
/// and handler takes cost one atomic increment (cloning the fields one by one
/// cost ~3,000 instructions per request, measured with callgrind).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// State shared by every handler.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// Who presented what token.
    pub auth: Auth,
    /// The event log subscribers read.
    pub hub: Hub,
    /// The runtimes and the commands sent to them.
    pub runtimes: Runtimes,
    /// What the handlers read from the configuration.
    pub settings: Arc<Settings>,
    /// Cancelled once the runtime sockets are closed: SSE streams end, after
    /// subscribers got those last events.
    pub streams_shutdown: CancellationToken,
    /// Answers remembered by `Idempotency-Key`.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Single-use stream tickets for `EventSource`.
    pub tickets: Arc<dyn TicketStore>,
    /// Revoked end-user tokens (`POST /revocations`).
    pub revocations: Arc<dyn RevocationStore>,
    /// Feeds: `GET /events?feed=…` credentials (`POST /feeds`).
    pub feeds: Arc<dyn FeedStore>,
    /// Turns that outlive a request: their followers and where they are kept.
    pub turns: Followers,
    /// Webhooks: in memory, or the cluster's in Redis.
    pub webhooks: Arc<dyn crate::webhooks::WebhookStore>,
    /// The cluster this instance belongs to, if any.
    pub cluster: Option<Arc<dyn ClusterView>>,
    /// Connection and stream limits.
    pub limits: Arc<Limits>,
    /// The sockets of Letta's clients: shutdown waits for their 1001.
    pub client_sockets: crate::letta::Sockets,
    /// Cancelled when the service begins to shut down: `/readyz` is `503`.
    pub draining: CancellationToken,
}

/// The routes and their OpenAPI document, before state is attached.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(commands::routes())
        .merge(events::routes())
        .merge(status::routes())
        .merge(runtime_side::routes())
        .merge(letta::routes())
        .merge(openai::routes())
        .merge(tickets::routes())
        .merge(turns::routes())
        .merge(revocations::routes())
        .merge(feeds::routes())
        .merge(webhooks::routes())
        .merge(console::routes())
        .merge(metrics::routes())
}

/// The router and the complete OpenAPI document it serves.
fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = routes().split_for_parts();
    openapi::refine(&mut api);
    (router, api)
}

/// The OpenAPI document the service serves at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    split().1
}

/// The complete application: routes, OpenAPI, fallbacks and layers.
pub fn app(state: AppState) -> Router {
    let (router, api) = split();
    let request_id = HeaderName::from_static("x-request-id");
    let cors = origin::cors(&state.settings.cors_origins);
    let origins = state.settings.cors_origins.clone();
    let limits = state.limits.clone();
    let router = router
        .route_layer(axum::middleware::from_fn(metrics::track))
        // Swagger UI at /docs (assets compiled in), and the document at /openapi.json.
        .merge(openapi::docs(api))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .with_state(state);
    // Outermost first: the origin check, then CORS (answers allowed preflights).
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn_with_state(origins, origin::check_origin))
        .layer(axum::middleware::from_fn_with_state(limits, limits::check_connections))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        // The request's span (method, path, request id) and its access-log line.
        .layer(axum::middleware::from_fn(access_log::log))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::Rejected(axum::http::StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}
