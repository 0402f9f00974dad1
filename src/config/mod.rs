//! Settings: every knob is a command-line flag with an environment variable
//! (`--help` lists them all), validated before anything binds.
//!
//! The `LETTA_BRIDGE_*` variable names are part of the public interface.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

mod banner;
mod error;
mod tokens;
mod user_tokens;
mod validate;

pub use banner::banner;
pub use error::ConfigError;
pub use tokens::Tokens;
pub use user_tokens::{MIN_USER_TOKEN_SECRET_LEN, PreviousSecret, UserTokenSettings};
pub use validate::valid_origin;

/// A node id for an instance started without LETTA_BRIDGE_NODE_ID (`n-` and 12 hex digits).
pub fn random_node_id() -> String {
    format!("n-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Smallest token length we accept without a warning.
const MIN_TOKEN_LEN: usize = 16;

/// letta-bridge: drive a Letta Code runtime from plain HTTP (REST, SSE, OpenAPI).
// No `Debug`: the struct holds tokens, which must never be formatted.
#[derive(Clone, Parser)]
#[command(name = "letta-bridge", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on for both the runtime WebSocket and the HTTP API.
    /// Binding anything but loopback requires the runtime and client tokens.
    #[arg(long, env = "LETTA_BRIDGE_LISTEN", default_value = "127.0.0.1:8284")]
    pub listen: SocketAddr,

    /// PEM certificate chain for TLS: with `--tls-key`, the one port serves
    /// HTTPS and `wss://` (for LAN or internet deployments without a proxy).
    #[arg(long, env = "LETTA_BRIDGE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "LETTA_BRIDGE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Token the runtime presents (`LETTA_API_KEY` on the runtime side); it
    /// may register and connect as any device. Generated and printed once
    /// when unset on a loopback bind, unless LETTA_BRIDGE_RUNTIME_TOKENS_FILE
    /// or LETTA_BRIDGE_CLUSTER_URL is set.
    #[arg(long, env = "LETTA_BRIDGE_RUNTIME_TOKEN", hide_env_values = true)]
    pub runtime_token: Option<String>,

    /// File of per-device runtime tokens, one a line: `<token>
    /// <deviceId>[,<deviceId>…]`, or `<token> *` for any device (`#`
    /// comments). A runtime may register and connect only as a device its
    /// token names. Re-read on SIGHUP. When set without
    /// LETTA_BRIDGE_RUNTIME_TOKEN, there is no shared runtime token.
    #[arg(long, env = "LETTA_BRIDGE_RUNTIME_TOKENS_FILE")]
    pub runtime_tokens_file: Option<std::path::PathBuf>,

    /// Token HTTP clients present as `Authorization: Bearer`. Allows the
    /// conversation commands (input, sync, abort, approval, device state).
    /// Generated and printed once when unset on a loopback bind (not in
    /// cluster mode).
    #[arg(long, env = "LETTA_BRIDGE_CLIENT_TOKEN", hide_env_values = true)]
    pub client_token: Option<String>,

    /// Token for privileged commands (files, terminals, memory, secrets,
    /// runtime_start, ...) and everything a client token allows. Generated and
    /// printed once when unset on a loopback bind (not in cluster mode, where
    /// it is required); when unset elsewhere, privileged commands are refused.
    #[arg(long, env = "LETTA_BRIDGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Secret that signs end users' tokens (JWTs, HS256), at least 32 bytes
    /// (`openssl rand -hex 32`). Setting it (or LETTA_BRIDGE_USER_TOKEN_JWKS_URL)
    /// turns user tokens on: accepted wherever the client token is, each
    /// allowing what its `authorization_details` grant. Every cluster
    /// instance needs the same.
    #[arg(long, env = "LETTA_BRIDGE_USER_TOKEN_SECRET", hide_env_values = true)]
    pub user_token_secret: Option<String>,

    /// The user token secret before the last rotation, still accepted until
    /// LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL (which it requires).
    #[arg(long, env = "LETTA_BRIDGE_USER_TOKEN_PREVIOUS_SECRET", hide_env_values = true)]
    pub user_token_previous_secret: Option<String>,

    /// When the previous user token secret stops being accepted: an RFC 3339
    /// time such as `2026-07-01T12:00:00Z` (at least the longest `exp` of the
    /// tokens it signed).
    #[arg(long, env = "LETTA_BRIDGE_USER_TOKEN_PREVIOUS_UNTIL")]
    pub user_token_previous_until: Option<String>,

    /// An identity provider's JSON Web Key Set (`https://…/jwks.json`): user
    /// tokens signed with its RS256, ES256 or EdDSA keys are accepted too.
    /// Fetched when first needed, kept an hour, fetched again for an unknown
    /// `kid` (at most every 30 s). `http://` only to a loopback host.
    #[arg(long, env = "LETTA_BRIDGE_USER_TOKEN_JWKS_URL")]
    pub user_token_jwks_url: Option<String>,

    /// The audience a user token's `aud` must include.
    #[arg(long, env = "LETTA_BRIDGE_USER_TOKEN_AUDIENCE", default_value = "letta-bridge")]
    pub user_token_audience: String,

    /// When set, a user token's `iss` must equal it (e.g. the identity
    /// provider's issuer URL).
    #[arg(long, env = "LETTA_BRIDGE_USER_TOKEN_ISSUER")]
    pub user_token_issuer: Option<String>,

    /// Public base URL of this bridge (e.g. `https://bridge.example.com`), used
    /// to build the `wsUrl` handed out at registration. Default: the request's
    /// `Host` header.
    #[arg(long, env = "LETTA_BRIDGE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://app.example.com,http://localhost:3000`. None by default;
    /// requests from other origins get 403 (the bridge's own page is allowed).
    #[arg(long, env = "LETTA_BRIDGE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Internal addresses webhooks may post to, comma-separated: IP
    /// addresses or CIDR blocks (`127.0.0.1,10.0.0.0/8,::1`). Private,
    /// loopback and link-local targets are refused otherwise (checked on
    /// the addresses a hook's host resolves to).
    #[arg(long, env = "LETTA_BRIDGE_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<String>,

    /// The waits between a webhook delivery's attempts, comma-separated
    /// (`5s,5m,30m`); unset: Standard Webhooks' schedule (5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 10 h). For tests and staging.
    #[arg(long, env = "LETTA_BRIDGE_WEBHOOK_SCHEDULE", value_delimiter = ',', value_parser = humantime::parse_duration)]
    pub webhook_schedule: Option<Vec<Duration>>,

    /// Largest HTTP request body accepted, in bytes (413 beyond).
    #[arg(long, env = "LETTA_BRIDGE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest WebSocket message accepted from a runtime, in bytes.
    #[arg(long, env = "LETTA_BRIDGE_MAX_FRAME_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_frame_bytes: usize,

    /// Interval between SSE keepalive comments (e.g. `15s`, `500ms`).
    #[arg(long, env = "LETTA_BRIDGE_KEEPALIVE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub keepalive: Duration,

    /// End each event stream after this long (e.g. `10m`); clients resume with
    /// `Last-Event-ID` (EventSource does so by itself). Unset: streams last
    /// until the client leaves. Useful behind proxies that rebalance.
    #[arg(long, env = "LETTA_BRIDGE_MAX_STREAM_DURATION", value_parser = humantime::parse_duration)]
    pub max_stream_duration: Option<Duration>,

    /// Interval between WebSocket ping control frames sent to each runtime.
    #[arg(long, env = "LETTA_BRIDGE_PING_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// A runtime that leaves this many pings in a row unanswered is marked
    /// offline and its socket closed.
    #[arg(long, env = "LETTA_BRIDGE_MAX_MISSED_PONGS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_missed_pongs: u32,

    /// Default time an awaited command (`?wait=true`) waits for its reply.
    #[arg(long, env = "LETTA_BRIDGE_WAIT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub wait_timeout: Duration,

    /// Upper bound for `timeout_ms` on awaited commands.
    #[arg(long, env = "LETTA_BRIDGE_MAX_WAIT_TIMEOUT", default_value = "300s", value_parser = humantime::parse_duration)]
    pub max_wait_timeout: Duration,

    /// A `?wait=completion` request still waiting after this long is
    /// answered `202` with `Location: /turns/{id}` and `Retry-After`; the
    /// turn is followed on and polled there (`0s`: answer `202` as soon as
    /// the input is written, as with `Prefer: respond-async`).
    #[arg(long, env = "LETTA_BRIDGE_ASYNC_AFTER", default_value = "25s", value_parser = humantime::parse_duration)]
    pub async_after: Duration,

    /// What the OpenAI-compatible API (`POST /v1/chat/completions`) does when
    /// a turn stops to ask for a tool approval: `deny` answers it for the
    /// caller (the tool does not run; the agent goes on and says so), `fail`
    /// ends the request with a `409` `approval_required` error and leaves
    /// the approval pending for `POST /approval`. Neither runs a tool
    /// unapproved, and neither waits.
    #[arg(long, env = "LETTA_BRIDGE_OPENAI_APPROVALS", value_enum, default_value_t = OpenAiApprovals::Deny)]
    pub openai_approvals: OpenAiApprovals,

    /// Most awaited commands pending at once, over all runtimes (503 beyond).
    #[arg(long, env = "LETTA_BRIDGE_MAX_PENDING", default_value_t = 10_000)]
    pub max_pending: usize,

    /// Commands queued per runtime socket before new ones get 503.
    #[arg(long, env = "LETTA_BRIDGE_COMMAND_QUEUE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub command_queue: u32,

    /// A runtime offline (or registered and never connected) this long is
    /// forgotten: it leaves `GET /runtimes`, and its connection id must
    /// register again. Bounds the registry under a churn of one-off devices.
    #[arg(long, env = "LETTA_BRIDGE_FORGET_OFFLINE_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub forget_offline_after: Duration,

    /// Events kept in the replay ring (what subscribers read from and resume from).
    #[arg(long, env = "LETTA_BRIDGE_REPLAY_EVENTS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub replay_events: u64,

    /// Bytes of event data kept in the replay ring.
    #[arg(long, env = "LETTA_BRIDGE_REPLAY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub replay_bytes: usize,

    /// Age after which events leave the replay ring.
    #[arg(long, env = "LETTA_BRIDGE_REPLAY_MAX_AGE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub replay_max_age: Duration,

    /// How long an `Idempotency-Key` is remembered.
    #[arg(long, env = "LETTA_BRIDGE_IDEMPOTENCY_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,

    /// Most `Idempotency-Key`s remembered at once (the oldest go first).
    #[arg(long, env = "LETTA_BRIDGE_IDEMPOTENCY_KEYS", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub idempotency_keys: u32,

    /// Most HTTP connections served at once; requests on further ones get
    /// `503` (the runtime's WebSocket paths excepted). Default: the open-file
    /// limit at start less a reserve of a twentieth (at least 32) for
    /// runtimes, Redis and files.
    #[arg(long, env = "LETTA_BRIDGE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most event streams and Letta clients' sockets open at once; further
    /// ones get `503`. Default: the connection limit less a further
    /// twentieth of the open-file limit (at least 16), so that commands and
    /// runtimes always find a connection.
    #[arg(long, env = "LETTA_BRIDGE_MAX_STREAMS")]
    pub max_streams: Option<usize>,

    /// Requests per second per end user (the `sub` of their tokens,
    /// whichever they present): every request made with one of their
    /// tokens and every command over their Letta sockets counts one; beyond
    /// it, `429` + `Retry-After`. One budget across a cluster.
    #[arg(long, env = "LETTA_BRIDGE_USER_RATE", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_rate: u32,

    /// Requests one end user may make at once after a quiet spell, above their rate.
    #[arg(long, env = "LETTA_BRIDGE_USER_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_burst: u32,

    /// Most streams (event and feed streams, Letta clients' sockets) one end
    /// user holds open on an instance; further ones get `429`.
    #[arg(long, env = "LETTA_BRIDGE_USER_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub user_streams: u32,

    /// Requests per second made with the client token (counted as an end
    /// user's are). Default: no limit of its own (it is usually one
    /// backend speaking for many users; the instance's limits hold it).
    #[arg(long, env = "LETTA_BRIDGE_CLIENT_RATE", value_parser = clap::value_parser!(u32).range(1..))]
    pub client_rate: Option<u32>,

    /// The client token's burst above its rate. Default: four seconds of LETTA_BRIDGE_CLIENT_RATE.
    #[arg(long, env = "LETTA_BRIDGE_CLIENT_BURST", value_parser = clap::value_parser!(u32).range(1..))]
    pub client_burst: Option<u32>,

    /// Most streams the client token holds open on an instance. Default: no
    /// limit of its own (LETTA_BRIDGE_MAX_STREAMS holds it).
    #[arg(long, env = "LETTA_BRIDGE_CLIENT_STREAMS", value_parser = clap::value_parser!(u32).range(1..))]
    pub client_streams: Option<u32>,

    /// New connections per second this instance accepts before it refuses
    /// their requests (`429`), the runtime's own excepted.
    #[arg(long, env = "LETTA_BRIDGE_CONNECT_RATE", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_rate: u32,

    /// New connections accepted at once after a quiet spell, above the connect rate.
    #[arg(long, env = "LETTA_BRIDGE_CONNECT_BURST", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_burst: u32,

    /// Longest a connection may take to send a request's head: from accept
    /// (TLS handshake and HTTP/2 preface included) to the first request,
    /// and on a kept-alive connection from a request's first byte to the
    /// end of its head. Slower connections are closed.
    #[arg(long, env = "LETTA_BRIDGE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// A connection with no request in flight (a kept-alive one between
    /// requests) is closed after this long; so is one whose peer has not
    /// read what it was sent for this long. Streams and WebSockets in use
    /// are not idle.
    #[arg(long, env = "LETTA_BRIDGE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Time a shutdown waits for streams and runtime sockets to close.
    #[arg(long, env = "LETTA_BRIDGE_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Log format.
    #[arg(long, env = "LETTA_BRIDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Redis (7+, or Valkey) shared by several bridge instances: `redis://`,
    /// `rediss://`, `redis+unix://`, or
    /// `redis+sentinel://host:port[,host:port…]/<master-name>` (the primary
    /// Redis Sentinel names, followed after a failover). Unset: one process,
    /// everything in memory.
    /// Every instance needs the same cluster name and the same tokens: it
    /// refuses to start without the runtime token (or tokens file), the
    /// client token and the admin token, and generates none.
    #[arg(long, env = "LETTA_BRIDGE_CLUSTER_URL", hide_env_values = true)]
    pub cluster_url: Option<String>,

    /// Name of the cluster: the prefix (and hash tag) of its Redis keys, so
    /// that several clusters can share one Redis.
    #[arg(long, env = "LETTA_BRIDGE_CLUSTER_NAME", default_value = "letta-bridge")]
    pub cluster_name: String,

    /// This instance's id in the cluster (1-64 characters of [A-Za-z0-9._-]).
    /// Default: random at each start.
    #[arg(long, env = "LETTA_BRIDGE_NODE_ID")]
    pub node_id: Option<String>,

    /// An instance that has not renewed its lease for this long counts as
    /// lost: its runtimes go offline (`instance_lost`) everywhere. It renews
    /// every third of it, and fences itself (closes its runtime sockets) when
    /// it could not renew for half of it.
    #[arg(long, env = "LETTA_BRIDGE_NODE_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub node_ttl: Duration,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What the OpenAI-compatible API does at a tool approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpenAiApprovals {
    /// Deny the tool call and let the turn go on.
    Deny,
    /// End the request with an error; the approval stays pending.
    Fail,
}

impl Config {
    /// A config with every default, listening on `127.0.0.1:0` (for tests).
    pub fn for_tests() -> Self {
        Self::parse_from(["letta-bridge", "--listen", "127.0.0.1:0"])
    }
}

#[cfg(test)]
mod tests;
