//! What is wrong with the settings: every refusal names the setting and
//! what to do, and the process exits (code 2) before anything binds.

use std::net::SocketAddr;

/// What went wrong with the settings; the process exits before binding.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "refusing to listen on non-loopback address {0} without LETTA_BRIDGE_RUNTIME_TOKEN (or LETTA_BRIDGE_RUNTIME_TOKENS_FILE) and LETTA_BRIDGE_CLIENT_TOKEN set"
    )]
    /// A non-loopback bind without the runtime token (or tokens file) and the client token.
    TokensRequired(SocketAddr),
    /// Cluster mode without the tokens every instance must share (the
    /// settings named, or the runtime token "or" its file).
    #[error(
        "cluster mode (LETTA_BRIDGE_CLUSTER_URL) generates no tokens: every instance needs the same ones; missing: {} (create each once with `openssl rand -hex 32` and give every instance the same)",
        .0.join(", ")
    )]
    ClusterTokensRequired(Vec<&'static str>),
    /// A token set to an empty string.
    #[error("{0} is set but empty")]
    EmptyToken(&'static str),
    /// Two roles given the same token.
    #[error("{0} and {1} must differ: each token grants a different role")]
    SameTokens(&'static str, &'static str),
    /// A public URL that is not http(s) or ws(s).
    #[error("LETTA_BRIDGE_PUBLIC_URL must start with http://, https://, ws:// or wss:// (got {0:?})")]
    PublicUrl(String),
    /// A CORS origin that is not `scheme://host[:port]`.
    #[error("LETTA_BRIDGE_CORS_ORIGINS entries must look like https://host[:port] (got {0:?})")]
    CorsOrigin(String),
    /// The maximum wait below the default wait.
    #[error("LETTA_BRIDGE_MAX_WAIT_TIMEOUT must not be below LETTA_BRIDGE_WAIT_TIMEOUT")]
    WaitTimeouts,
    /// A setting that must be positive set to zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A cluster URL of another scheme.
    #[error(
        "LETTA_BRIDGE_CLUSTER_URL must start with redis://, rediss://, redis+unix:// or redis+sentinel:// (got a {0:?} URL)"
    )]
    ClusterUrl(String),
    /// A cluster or node name with other characters.
    #[error("{0} must be 1-64 characters of [A-Za-z0-9._-]")]
    Name(&'static str),
    /// A node TTL too short to renew.
    #[error("LETTA_BRIDGE_NODE_TTL must be at least 300ms")]
    NodeTtl,
    /// A user token secret shorter than HS256 needs.
    #[error("{0} must be at least {1} bytes (got {2}); create one with `openssl rand -hex 32`")]
    ShortSecret(&'static str, usize, usize),
    /// A user token setting that needs another one.
    #[error("{0} is set without {1}")]
    Needs(&'static str, &'static str),
    /// A setting whose value cannot be used; the message says why.
    #[error("{0}: {1}")]
    Bad(&'static str, String),
}
