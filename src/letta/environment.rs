//! A runtime as Letta's environments API shows it (what `letta computers
//! list` and `letta-client`'s `environments.*` read), and which runtime a
//! connection id names.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use utoipa::ToSchema;

use crate::runtime::{RuntimeInfo, Runtimes, Unavailable};

/// How long a runtime counts as answering after its last pong (letta-code's
/// own `isOnline` rule: 120 s).
const HEARTBEAT_WINDOW_MS: u64 = 120_000;

/// The organisation every environment belongs to: the bridge has none.
const ORGANIZATION: &str = "local";

/// A runtime, as Letta's environments API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The runtime's device id.
    pub id: String,
    /// The device id (the bridge's runtime id).
    pub device_id: String,
    /// Set while the runtime is connected: the id its relay sockets and
    /// messages use (its registration's, else the device id).
    pub connection_id: Option<String>,
    /// Its `connectionName` (else the device id).
    pub connection_name: String,
    /// Always `local`: the bridge has no organisations.
    pub organization_id: String,
    /// Always null.
    pub pod_id: Option<String>,
    /// Unix ms the current connection opened.
    pub connected_at: Option<u64>,
    /// Unix ms of the runtime's last answer to a ping.
    pub last_heartbeat: Option<u64>,
    /// Unix ms it was last seen.
    pub last_seen_at: u64,
    /// Unix ms it was first seen (the earliest time the bridge knows of).
    pub first_seen_at: u64,
    /// What the runtime said of itself at registration.
    pub metadata: EnvironmentMetadata,
}

/// `metadata` of an environment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentMetadata {
    /// `lettaCodeVersion`.
    pub letta_code_version: Option<String>,
    /// `os`.
    pub os: Option<String>,
    /// `nodeVersion`.
    pub node_version: Option<String>,
}

/// A page of environments.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentList {
    /// Sorted by device id.
    pub connections: Vec<Environment>,
    /// True when `after` the last one there are more.
    pub has_next_page: bool,
}

impl Environment {
    /// The runtime `r` as an environment at `now` (Unix ms).
    pub fn of(r: &RuntimeInfo, now: u64) -> Self {
        let ms = |t: &Option<String>| t.as_deref().and_then(|t| humantime::parse_rfc3339(t).ok()).map(unix_ms);
        let connected_at = ms(&r.online_since);
        let last_heartbeat = ms(&r.last_pong_at).or(connected_at);
        let answering = r.online && last_heartbeat.is_some_and(|h| now.saturating_sub(h) < HEARTBEAT_WINDOW_MS);
        let seen = [connected_at, last_heartbeat, ms(&r.offline_since)];
        Self {
            id: r.id.clone(),
            device_id: r.id.clone(),
            connection_id: answering.then(|| r.connection_id.clone().unwrap_or_else(|| r.id.clone())),
            connection_name: r.connection_name.clone().unwrap_or_else(|| r.id.clone()),
            organization_id: ORGANIZATION.into(),
            pod_id: None,
            connected_at,
            last_heartbeat,
            last_seen_at: seen.iter().flatten().copied().max().unwrap_or(now),
            first_seen_at: seen.iter().flatten().copied().min().unwrap_or(now),
            metadata: EnvironmentMetadata {
                letta_code_version: r.version.clone(),
                os: r.os.clone(),
                node_version: r.node_version.clone(),
            },
        }
    }

    /// Connected and answering pings (letta-code's `isOnline`).
    pub fn is_online(&self) -> bool {
        self.connection_id.is_some()
    }
}

/// Now, in Unix ms.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The device a connection id names; a device id works too (`None`: neither).
pub async fn device_of(runtimes: &Runtimes, connection_id: &str) -> Result<Option<String>, Unavailable> {
    if let Some(device) = runtimes.device_of_connection(connection_id).await? {
        return Ok(Some(device.to_string()));
    }
    let known = runtimes.list().await?.iter().any(|r| r.id == connection_id);
    Ok(known.then(|| connection_id.to_owned()))
}
