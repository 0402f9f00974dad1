//! Building and running the service: validate settings, bind (port 0 works,
//! for tests), serve until the shutdown token is cancelled, then drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::{Config, Tokens};
use crate::http::{self, AppState, ClusterView, Limits, Settings, Shared};
use crate::hub::{self, Hub};
use crate::listener::CountingListener;
use crate::runtime::{self, Runtimes};
use crate::store::{IdempotencyStore, MemoryIdempotency, MemoryTickets, TicketStore};

/// The service, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    /// Set when the listener serves HTTPS and `wss://`.
    tls: Option<RustlsConfig>,
    addr: SocketAddr,
    state: AppState,
    /// Cancel it to stop the service.
    shutdown: CancellationToken,
    /// The router, built with everything else so that start-up's transient
    /// memory is spent (and can be released) before serving.
    app: axum::Router,
    tokens: Tokens,
    grace: std::time::Duration,
    /// The cluster this instance joined, if any.
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Where events, runtimes and the stores live: in this process (embedded),
/// or shared with other instances through Redis (cluster mode).
struct Backend {
    hub: Hub,
    runtimes: Runtimes,
    idempotency: Arc<dyn IdempotencyStore>,
    tickets: Arc<dyn TicketStore>,
    view: Option<Arc<dyn ClusterView>>,
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Backend {
    async fn build(config: &Config) -> anyhow::Result<Self> {
        let limits = hub::Limits {
            events: usize::try_from(config.replay_events).unwrap_or(usize::MAX),
            bytes: config.replay_bytes,
            max_age: config.replay_max_age,
        };
        let runtime_settings = runtime::Settings {
            ping_interval: config.ping_interval,
            max_missed_pongs: config.max_missed_pongs,
            command_queue: config.command_queue as usize,
            max_pending: config.max_pending,
            forget_offline_after: config.forget_offline_after,
        };
        if let Some(url) = &config.cluster_url {
            return Self::clustered(config, url, limits, runtime_settings).await;
        }
        let hub = Hub::new(limits);
        Ok(Self {
            runtimes: Runtimes::new(runtime_settings, hub.clone()),
            hub,
            idempotency: Arc::new(MemoryIdempotency::new(config.idempotency_window, config.idempotency_keys as usize)),
            tickets: Arc::new(MemoryTickets::new()),
            view: None,
            #[cfg(feature = "cluster")]
            cluster: None,
        })
    }

    #[cfg(feature = "cluster")]
    async fn clustered(
        config: &Config,
        url: &str,
        limits: hub::Limits,
        runtime_settings: runtime::Settings,
    ) -> anyhow::Result<Self> {
        use crate::cluster::{Cluster, Settings};
        let settings = Settings {
            url: url.to_owned(),
            name: config.cluster_name.clone(),
            node_id: config
                .node_id
                .clone()
                .unwrap_or_else(|| format!("n-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
            node_ttl: config.node_ttl,
            limits,
            forget_offline_after: config.forget_offline_after,
        };
        Cluster::describe_metrics();
        let (cluster, runtimes) = Cluster::start(settings, runtime_settings).await?;
        if !cluster.loaded(LOAD_WAIT).await {
            tracing::warn!(?LOAD_WAIT, "the mirror of the shared log is not loaded yet; /readyz stays 503 until it is");
        }
        let max_wait = config.max_wait_timeout + crate::runtime::WRITE_WAIT;
        let cluster = Arc::new(cluster);
        Ok(Self {
            hub: cluster.hub(),
            runtimes,
            idempotency: cluster.idempotency(config.idempotency_window, max_wait, config.idempotency_keys as usize),
            tickets: cluster.tickets(),
            view: Some(cluster.clone()),
            cluster: Some(cluster),
        })
    }

    #[cfg(not(feature = "cluster"))]
    async fn clustered(_: &Config, _: &str, _: hub::Limits, _: runtime::Settings) -> anyhow::Result<Self> {
        anyhow::bail!(
            "LETTA_BRIDGE_CLUSTER_URL is set, but this build has no cluster support (cargo feature `cluster`)"
        )
    }
}

/// How long start-up waits for a cluster instance's mirror to read the log.
#[cfg(feature = "cluster")]
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Application {
    /// Validates `config` and binds its listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let tokens = config.tokens()?;
        http::init_metrics();
        crate::clients::describe_metrics();
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(
                RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| format!("cannot load TLS certificate {cert:?} and key {key:?}"))?,
            ),
            _ => None,
        };
        let backend = Backend::build(&config).await?;
        let files = crate::listener::open_file_limit();
        let (max_connections, max_streams) = Limits::defaults(files);
        let max_connections = config.max_connections.unwrap_or(max_connections);
        let max_streams = config.max_streams.unwrap_or(max_streams.min(max_connections));
        tracing::info!(files, max_connections, max_streams, "connection limits");
        let limits = Limits::new(Arc::default(), max_connections, max_streams);
        let settings = Settings {
            public_url: config.public_url.clone(),
            tls: tls.is_some(),
            max_body_bytes: config.max_body_bytes,
            max_frame_bytes: config.max_frame_bytes,
            keepalive: config.keepalive,
            max_stream_duration: config.max_stream_duration,
            wait_timeout: config.wait_timeout,
            max_wait_timeout: config.max_wait_timeout,
            cors_origins: config.cors_origins.clone().into(),
            started: Instant::now(),
        };
        let state = AppState::new(Shared {
            auth: Auth::new(&tokens),
            hub: backend.hub,
            runtimes: backend.runtimes,
            settings: Arc::new(settings),
            streams_shutdown: CancellationToken::new(),
            idempotency: backend.idempotency,
            tickets: backend.tickets,
            cluster: backend.view,
            limits: limits.clone(),
            client_sockets: tokio_util::task::TaskTracker::new(),
        });
        let app = http::app(state.clone());
        let shutdown = CancellationToken::new();
        Ok(Self {
            listener,
            tls,
            addr,
            state,
            shutdown,
            app,
            tokens,
            grace: config.shutdown_grace,
            #[cfg(feature = "cluster")]
            cluster: backend.cluster,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The tokens in force (including generated ones).
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Cancel it to stop the service gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled; then SSE streams end,
    /// runtime sockets close with 1001, and in-flight requests finish within
    /// the grace period.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { listener, tls, addr, state, shutdown, app, grace, .. } = self;
        #[cfg(feature = "cluster")]
        let cluster = self.cluster;
        let streams = state.streams_shutdown.clone();
        tracing::info!(%addr, tls = tls.is_some(), epoch = %state.hub.epoch(), "letta-bridge listening");
        let serving = match tls {
            None => {
                // Counts connections, sets TCP_NODELAY (axum-server's
                // acceptor does the same), logs accept errors per burst.
                let listener = CountingListener::new(listener, state.limits.connections.clone());
                // Each connection gets a clone of the `Router` (an `Arc`).
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    crate::listener::serve(listener, app, stop).await;
                    std::io::Result::Ok(())
                })
            }
            Some(tls) => {
                // HTTP/2 where browsers use it: `RustlsConfig` offers ALPN
                // `h2`, then `http/1.1`, and axum-server's protocol-detecting
                // builder serves each connection in what it negotiated, so a
                // browser's tabs share one connection for all their event
                // streams and commands (hyper's default: at most 200 streams
                // each). WebSocket clients (the runtime, browsers without RFC
                // 8441, which is not enabled here) offer `http/1.1` or no ALPN
                // and upgrade as before. Pinned by tests/api/http2.rs.
                let handle = axum_server::Handle::new();
                // axum-server counts its connections: the limits read them there.
                state.limits.count_with(Box::new({
                    let handle = handle.clone();
                    move || handle.connection_count()
                }));
                let server = axum_server::from_tcp_rustls(listener.into_std()?, tls)?.handle(handle.clone());
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    handle.graceful_shutdown(Some(grace));
                });
                tokio::spawn(server.serve(app.into_make_service()))
            }
        };
        shutdown.cancelled().await;
        // Runtimes first (their offline events reach subscribers), then streams.
        let drained = tokio::time::timeout(grace, async {
            state.runtimes.close().await;
            #[cfg(feature = "cluster")]
            if let Some(cluster) = &cluster {
                cluster.leave(grace).await;
            }
            streams.cancel();
            // Letta clients' sockets send their close frame (1001) first.
            state.client_sockets.close();
            state.client_sockets.wait().await;
            serving.await
        })
        .await;
        streams.cancel();
        match drained {
            Ok(joined) => joined.context("server task panicked")?.context("server failed")?,
            Err(_) => tracing::warn!(?grace, "shutdown grace period over; stopping with connections still open"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}
