//! The checks on every setting but the tokens, made before anything binds.

use std::time::Duration;

use super::{Config, ConfigError};

impl Config {
    /// Checks everything but the tokens.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url {
            let ok = ["http://", "https://", "ws://", "wss://"].iter().any(|s| url.starts_with(s));
            if !ok || url.len() <= "wss://".len() {
                return Err(ConfigError::PublicUrl(url.clone()));
            }
        }
        if let Some(bad) = self.cors_origins.iter().find(|o| !valid_origin(o)) {
            return Err(ConfigError::CorsOrigin(bad.clone()));
        }
        if self.max_wait_timeout < self.wait_timeout {
            return Err(ConfigError::WaitTimeouts);
        }
        let zero_checks = [
            ("LETTA_BRIDGE_MAX_BODY_BYTES", self.max_body_bytes == 0),
            ("LETTA_BRIDGE_MAX_FRAME_BYTES", self.max_frame_bytes == 0),
            ("LETTA_BRIDGE_KEEPALIVE", self.keepalive.is_zero()),
            ("LETTA_BRIDGE_PING_INTERVAL", self.ping_interval.is_zero()),
            ("LETTA_BRIDGE_MAX_PENDING", self.max_pending == 0),
            ("LETTA_BRIDGE_REPLAY_BYTES", self.replay_bytes == 0),
            ("LETTA_BRIDGE_REPLAY_MAX_AGE", self.replay_max_age.is_zero()),
            ("LETTA_BRIDGE_WAIT_TIMEOUT", self.wait_timeout.is_zero()),
            ("LETTA_BRIDGE_SHUTDOWN_GRACE", self.shutdown_grace.is_zero()),
            ("LETTA_BRIDGE_HEADER_TIMEOUT", self.header_timeout.is_zero()),
            ("LETTA_BRIDGE_IDLE_TIMEOUT", self.idle_timeout.is_zero()),
            ("LETTA_BRIDGE_FORGET_OFFLINE_AFTER", self.forget_offline_after.is_zero()),
            ("LETTA_BRIDGE_MAX_CONNECTIONS", self.max_connections == Some(0)),
            ("LETTA_BRIDGE_MAX_STREAMS", self.max_streams == Some(0)),
        ];
        if let Some((name, _)) = zero_checks.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError::Zero(name));
        }
        self.validate_cluster()
    }

    /// Checks the cluster settings (only used when a cluster URL is set).
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.cluster_url else { return Ok(()) };
        if !["redis://", "rediss://", "redis+unix://", "redis+sentinel://"].iter().any(|s| url.starts_with(s)) {
            let scheme = url.split_once("://").map_or("unknown", |(s, _)| s);
            return Err(ConfigError::ClusterUrl(scheme.to_owned()));
        }
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !name_ok(&self.cluster_name) {
            return Err(ConfigError::Name("LETTA_BRIDGE_CLUSTER_NAME"));
        }
        if self.node_id.as_deref().is_some_and(|n| !name_ok(n)) {
            return Err(ConfigError::Name("LETTA_BRIDGE_NODE_ID"));
        }
        if self.node_ttl < Duration::from_millis(300) {
            return Err(ConfigError::NodeTtl);
        }
        Ok(())
    }
}

/// `scheme://host[:port]` with an http(s) scheme and nothing after it.
pub fn valid_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
        && authority.parse::<axum::http::uri::Authority>().is_ok()
}
