//! Building and running the service: validate settings, bind (port 0 works,
//! for tests), serve until the shutdown token is cancelled, then drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::serve::ListenerExt;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::{Config, Tokens};
use crate::http::{self, AppState, Settings, Shared};
use crate::hub::{Hub, Limits};
use crate::runtime::{self, Runtimes};
use crate::store::{MemoryIdempotency, MemoryTickets};

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
}

impl Application {
    /// Validates `config` and binds its listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let tokens = config.tokens()?;
        http::init_metrics();
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
        let hub = Hub::new(Limits {
            events: usize::try_from(config.replay_events).unwrap_or(usize::MAX),
            bytes: config.replay_bytes,
            max_age: config.replay_max_age,
        });
        let runtimes = Runtimes::new(
            runtime::Settings {
                ping_interval: config.ping_interval,
                max_missed_pongs: config.max_missed_pongs,
                command_queue: config.command_queue as usize,
                max_pending: config.max_pending,
            },
            hub.clone(),
        );
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
            hub,
            runtimes,
            settings: Arc::new(settings),
            streams_shutdown: CancellationToken::new(),
            idempotency: Arc::new(MemoryIdempotency::new(config.idempotency_window, config.idempotency_keys as usize)),
            tickets: Arc::new(MemoryTickets::default()),
        });
        let app = http::app(state.clone());
        let shutdown = CancellationToken::new();
        Ok(Self { listener, tls, addr, state, shutdown, app, tokens, grace: config.shutdown_grace })
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
        let streams = state.streams_shutdown.clone();
        tracing::info!(%addr, tls = tls.is_some(), epoch = %state.hub.epoch(), "letta-bridge listening");
        let serving = match tls {
            None => {
                // No Nagle delay: events and commands are small writes that
                // must leave at once (axum-server's acceptor does the same).
                let listener = listener.tap_io(|tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                });
                // `into_make_service`: each connection gets a clone of the
                // `Arc`. Serving the `Router` itself would deep-clone it per
                // connection (`with_state(())`: the route table and every
                // boxed, layered endpoint), ~23 KB per idle SSE subscriber (DHAT).
                let server = axum::serve(listener, app.into_make_service())
                    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
                tokio::spawn(async move { server.await })
            }
            Some(tls) => {
                let handle = axum_server::Handle::new();
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
            streams.cancel();
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
