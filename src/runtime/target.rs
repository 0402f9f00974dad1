//! Where a command to a runtime goes ([`Target`]), why it has nowhere to go
//! ([`RouteError`]), and a runtime as `GET /runtimes` shows it.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::Link;

/// Where a command to a runtime goes.
pub enum Target {
    /// The runtime's socket is served by this process.
    Local(Link),
    /// Another bridge instance serves it (cluster mode).
    Remote(Remote),
}

/// A runtime connected to another bridge instance.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The runtime (its device id).
    pub runtime_id: Arc<str>,
    /// The instance holding its socket.
    pub node: Arc<str>,
    /// That connection's generation.
    pub generation: u64,
}

/// Why a command has no runtime to go to.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No runtime is online, and none was named.
    #[error("no runtime is online")]
    NoneOnline,
    /// The named runtime is known but offline.
    #[error("runtime {0:?} is offline")]
    Offline(String),
    /// The named runtime was never seen.
    #[error("no runtime {0:?} is known")]
    Unknown(String),
    /// Several are online and none was named; the ids, sorted.
    #[error("several runtimes are online; name one with ?runtime= or /runtimes/{{id}}/…")]
    Ambiguous(Vec<String>),
}

/// A runtime as `GET /runtimes` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuntimeInfo {
    /// The runtime's `deviceId` (`direct` for a plain connection without one).
    pub id: String,
    /// True while its socket is open.
    pub online: bool,
    /// Assigned at registration; absent for direct connections.
    pub connection_id: Option<String>,
    /// `connectionName` from registration or the socket's query.
    pub connection_name: Option<String>,
    /// RFC 3339.
    pub online_since: Option<String>,
    /// RFC 3339 time of the last WebSocket pong.
    pub last_pong_at: Option<String>,
    /// RFC 3339.
    pub offline_since: Option<String>,
    /// `lettaCodeVersion` from registration.
    pub version: Option<String>,
    /// `os` from registration.
    pub os: Option<String>,
    /// `nodeVersion` from registration.
    pub node_version: Option<String>,
    /// The bridge instance holding its socket (cluster mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// One page of `GET /runtimes`: runtimes sorted by id.
#[derive(Debug, Clone, Default)]
pub struct RuntimePage {
    /// The runtimes of the page.
    pub runtimes: Vec<RuntimeInfo>,
    /// True when runtimes with later ids follow.
    pub more: bool,
}

/// A scope seen on a runtime (an event of the runtime named it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownScope {
    /// The runtime (device id).
    pub runtime_id: String,
    /// True when the runtime is online now.
    pub online: bool,
    /// The agent and conversation.
    pub scope: crate::protocol::Scope,
}
