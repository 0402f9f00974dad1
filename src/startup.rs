//! Building and running the service: validate settings, bind (port 0 works,
//! for tests), serve until the shutdown token is cancelled, then drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, DeviceTokens, UserTokens};
use crate::backend::{Backend, Membership};
use crate::config::{Config, Tokens, UserTokenSettings};
use crate::http::{self, AppState, Followers, Limits, Settings, Shared};
use crate::listener::{self, Listener};
use crate::quota::{self, Quotas};
use crate::store::Rate;

/// The service, bound and ready to run.
pub struct Application {
    listener: tokio::net::TcpListener,
    /// How the listener serves (timeouts, cap, TLS).
    serving: listener::Settings,
    addr: SocketAddr,
    state: AppState,
    /// Cancel it to stop the service.
    shutdown: CancellationToken,
    /// The router, built with everything else so that start-up's transient
    /// memory is spent (and can be released) before serving.
    app: axum::Router,
    tokens: Tokens,
    /// LETTA_BRIDGE_RUNTIME_TOKENS_FILE's tokens, when set (SIGHUP reloads them).
    device_tokens: Option<DeviceTokens>,
    grace: std::time::Duration,
    /// The cluster this instance joined, if any (left at shutdown).
    membership: Membership,
}

/// Reads LETTA_BRIDGE_RUNTIME_TOKENS_FILE (a bad file stops the start).
fn load_device_tokens(path: &std::path::Path, tokens: &Tokens) -> anyhow::Result<DeviceTokens> {
    let devices = DeviceTokens::load(path, tokens.named())?;
    let loaded = devices.loaded();
    tracing::info!(path = %path.display(), tokens = loaded.tokens, devices = loaded.devices, "runtime tokens loaded");
    if loaded.tokens == 0 && tokens.runtime.is_none() {
        tracing::warn!(path = %path.display(), "the runtime tokens file has no token and there is no shared runtime token: no runtime can connect");
    }
    Ok(devices)
}

/// The verifier of end users' tokens, and a line in the log saying how
/// they are verified (never a secret).
fn user_tokens(settings: &UserTokenSettings) -> anyhow::Result<UserTokens> {
    let users = UserTokens::new(settings)?;
    tracing::info!(
        hs256 = settings.secret.is_some(),
        previous_until = ?settings.previous.as_ref().map(|p| humantime::format_rfc3339_seconds(p.until)),
        jwks_url = ?settings.jwks_url,
        audience = %settings.audience,
        issuer = ?settings.issuer,
        "user tokens on"
    );
    Ok(users)
}

/// Reloads LETTA_BRIDGE_RUNTIME_TOKENS_FILE (on SIGHUP) and logs the
/// outcome; a bad file keeps the tokens in force. Never logs a token.
pub fn reload_device_tokens(devices: &DeviceTokens) {
    match devices.reload() {
        Ok(loaded) => tracing::info!(
            path = %devices.path().display(),
            tokens = loaded.tokens,
            devices = loaded.devices,
            "runtime tokens reloaded"
        ),
        Err(e) => tracing::error!(
            line = e.line(),
            error = %e,
            "runtime tokens not reloaded; the tokens in force stay"
        ),
    }
}

impl Application {
    /// Validates `config` and binds its listen address.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let tokens = config.tokens()?;
        let device_tokens = match &config.runtime_tokens_file {
            Some(path) => Some(load_device_tokens(path, &tokens)?),
            None => None,
        };
        let user_tokens = match config.user_tokens()? {
            Some(settings) => Some(user_tokens(&settings)?),
            None => None,
        };
        http::init_metrics();
        let listener = listener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(listener::tls_acceptor(cert, key)?),
            _ => None,
        };
        let backend = Backend::build(&config).await?;
        let files = crate::listener::open_file_limit();
        let (max_connections, max_streams) = Limits::defaults(files);
        let max_connections = config.max_connections.unwrap_or(max_connections);
        let max_streams = config.max_streams.unwrap_or(max_streams.min(max_connections));
        let cap = listener::cap(files, max_connections);
        tracing::info!(files, max_connections, max_streams, cap, "connection limits");
        let quotas = Quotas::new(quota_settings(&config), backend.rates.clone());
        let limits = Limits::new(Arc::default(), max_connections, max_streams, quotas);
        let settings = Settings {
            public_url: config.public_url.clone(),
            tls: tls.is_some(),
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.idle_timeout,
            max_frame_bytes: config.max_frame_bytes,
            keepalive: config.keepalive,
            max_stream_duration: config.max_stream_duration,
            wait_timeout: config.wait_timeout,
            max_wait_timeout: config.max_wait_timeout,
            async_after: config.async_after,
            openai_approvals: config.openai_approvals,
            cors_origins: config.cors_origins.clone().into(),
            started: Instant::now(),
        };
        let shutdown = CancellationToken::new();
        let streams_shutdown = CancellationToken::new();
        let client_sockets = crate::letta::Sockets::new(
            backend.runtimes.clone(),
            backend.hub.clone(),
            limits.quotas.clone(),
            streams_shutdown.clone(),
        );
        let mut auth = Auth::new(&tokens);
        if let Some(devices) = &device_tokens {
            auth = auth.with_device_tokens(devices.clone());
        }
        if let Some(users) = user_tokens {
            auth = auth.with_user_tokens(users);
        }
        let state = AppState::new(Shared {
            auth,
            hub: backend.hub,
            runtimes: backend.runtimes,
            settings: Arc::new(settings),
            streams_shutdown,
            idempotency: backend.idempotency,
            tickets: backend.tickets,
            revocations: backend.revocations,
            feeds: backend.feeds,
            turns: Followers::new(backend.turns),
            webhooks: backend.webhooks,
            cluster: backend.view,
            limits: limits.clone(),
            client_sockets,
            draining: shutdown.clone(),
        });
        let app = http::app(state.clone());
        let serving = listener::Settings {
            timeouts: listener::Timeouts { header: config.header_timeout, idle: config.idle_timeout },
            cap,
            tls,
            connect_rate: listener::OverConnectRate {
                per_second: f64::from(config.connect_rate),
                burst: config.connect_burst,
            },
        };
        Ok(Self {
            listener,
            serving,
            addr,
            state,
            shutdown,
            app,
            tokens,
            device_tokens,
            grace: config.shutdown_grace,
            membership: backend.membership,
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

    /// LETTA_BRIDGE_RUNTIME_TOKENS_FILE's tokens, when set: what SIGHUP reloads.
    pub fn device_tokens(&self) -> Option<DeviceTokens> {
        self.device_tokens.clone()
    }

    /// Cancel it to stop the service gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled; then SSE streams end,
    /// runtime sockets close with 1001, and in-flight requests finish within
    /// the grace period.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { listener, serving, addr, state, shutdown, app, grace, membership, .. } = self;
        let streams = state.streams_shutdown.clone();
        tracing::info!(%addr, tls = serving.tls.is_some(), epoch = %state.hub.epoch(), "letta-bridge listening");
        // HTTP/2 where browsers use it: over TLS, ALPN offers `h2` first, so
        // a browser's tabs share one connection for all their event streams
        // and commands (hyper's default: at most 200 streams each); plain
        // clients with prior knowledge open with its preface. WebSocket
        // clients (the runtime) speak HTTP/1.1. Pinned by tests/api/http2.rs.
        let listener = Listener::new(listener, state.limits.connections.clone(), serving);
        // Each connection gets a clone of the `Router` (an `Arc`).
        let serving = tokio::spawn(listener::serve(listener, app, shutdown.clone()));
        shutdown.cancelled().await;
        // Runtimes first (their offline events reach subscribers), then
        // streams, then the requests in flight, and only then the cluster:
        // a request forwarded to another instance is answered through the
        // shared log's mirror and the peers' channels, which leaving stops
        // (leaving first held such requests until their deadline, past the
        // grace: seen in tests/cluster/rolling.rs).
        let drained = tokio::time::timeout(grace, async {
            state.runtimes.close().await;
            // Turns of local runtimes ended with their sockets; the rest are recorded as stopped.
            state.turns.close(grace).await;
            state.webhooks.close(grace).await;
            streams.cancel();
            // Letta clients' sockets send their close frame (1001) first.
            state.client_sockets.close();
            state.client_sockets.wait().await;
            let served = serving.await;
            membership.leave(grace).await;
            served
        })
        .await;
        streams.cancel();
        match drained {
            Ok(joined) => joined.context("server task panicked")?,
            Err(_) => tracing::warn!(?grace, "shutdown grace period over; stopping with connections still open"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The per-credential limits `config` sets.
fn quota_settings(config: &Config) -> quota::Settings {
    let rate = |per_second: u32, burst: u32| Rate { per_second: f64::from(per_second), burst };
    quota::Settings {
        user: quota::Limit {
            rate: Some(rate(config.user_rate, config.user_burst)),
            streams: Some(config.user_streams as usize),
        },
        client: quota::Limit {
            rate: config.client_rate.map(|r| rate(r, config.client_burst.unwrap_or(r.saturating_mul(4)))),
            streams: config.client_streams.map(|s| s as usize),
        },
    }
}
