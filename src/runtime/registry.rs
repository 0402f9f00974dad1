//! Which runtimes exist, keyed by `deviceId`, which are online, and where a
//! command to one of them goes. State only: the events these changes cause
//! are published by [`super::Runtimes`].
//!
//! A new connection from a device replaces its old one; each connection has a
//! generation, and only the current generation's close marks the device
//! offline (the seed's `if (runtime === socket)` rule).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::link::{Link, Outgoing};
use super::scopes::SharedScopes;
use crate::protocol::Scope;
use crate::protocol::bridge::{RuntimeOffline, RuntimeOnline};

/// Where a command to a runtime goes.
pub enum Target {
    /// The runtime's socket is served by this process.
    Local(Link),
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
}

/// The device registry. Cheap operations under one lock, never held across
/// `.await`.
#[derive(Default)]
pub(super) struct Registry {
    state: Mutex<State>,
    next_generation: AtomicU64,
}

#[derive(Default)]
struct State {
    devices: HashMap<Arc<str>, Device>,
    /// connectionId → deviceId, from registrations.
    connections: HashMap<String, Arc<str>>,
}

#[derive(Default)]
struct Device {
    connection_id: Option<String>,
    connection_name: Option<String>,
    version: Option<String>,
    os: Option<String>,
    node_version: Option<String>,
    live: Option<Live>,
    offline_since: Option<SystemTime>,
    scopes: SharedScopes,
}

struct Live {
    link: Link,
    since: SystemTime,
    last_pong: Arc<AtomicU64>,
    replaced: CancellationToken,
}

/// A connection made the current one of its device: what its socket task needs.
pub(super) struct Joined {
    pub(super) link: Link,
    pub(super) commands: mpsc::Receiver<Outgoing>,
    /// Cancelled when a newer connection of the same device takes over.
    pub(super) replaced: CancellationToken,
    /// Unix millis of the last pong control frame (0: none yet).
    pub(super) last_pong: Arc<AtomicU64>,
    /// The device's scopes, kept across its connections.
    pub(super) scopes: SharedScopes,
    /// Scopes to `sync` now: those seen before, when this is a reconnect.
    pub(super) resync: Vec<Scope>,
}

impl Registry {
    /// Records a registration; returns the device's (stable) connection id.
    pub(super) fn register(
        &self,
        device_id: &str,
        connection_name: Option<String>,
        metadata: Option<&Value>,
    ) -> String {
        let text = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str).map(str::to_owned);
        let mut state = self.lock();
        let key: Arc<str> = Arc::from(device_id);
        let device = state.devices.entry(key.clone()).or_default();
        device.connection_name = connection_name.or(device.connection_name.take());
        device.version = text("lettaCodeVersion");
        device.os = text("os");
        device.node_version = text("nodeVersion");
        let id = device.connection_id.get_or_insert_with(|| format!("conn-{}", uuid::Uuid::new_v4())).clone();
        state.connections.insert(id.clone(), key);
        id
    }

    /// The device a registration's connection id belongs to.
    pub(super) fn device_of_connection(&self, connection_id: &str) -> Option<Arc<str>> {
        self.lock().connections.get(connection_id).cloned()
    }

    /// Makes a new connection the device's current one, replacing (and
    /// closing) any older one. `announce` publishes its `runtime_online`
    /// under the registry's lock, so that a device's status events are in
    /// the order of its registry changes.
    pub(super) fn join(
        &self,
        device_id: &str,
        connection_name: Option<String>,
        queue: usize,
        announce: impl FnOnce(&Arc<str>, &RuntimeOnline),
    ) -> Joined {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = self.lock();
        let key = state.devices.get_key_value(device_id).map_or_else(|| Arc::from(device_id), |(k, _)| k.clone());
        let device = state.devices.entry(key.clone()).or_default();
        let (link, commands) = Link::new(key.clone(), generation, queue);
        let live = Live {
            link: link.clone(),
            since: SystemTime::now(),
            last_pong: Arc::new(AtomicU64::new(0)),
            replaced: CancellationToken::new(),
        };
        if let Some(old) = device.live.replace(live) {
            old.replaced.cancel();
        }
        if connection_name.is_some() {
            device.connection_name = connection_name;
        }
        device.offline_since = None;
        let live = device.live.as_ref().expect("just set");
        let online = RuntimeOnline {
            kind: "runtime_online",
            runtime_id: key.to_string(),
            connection_name: device.connection_name.clone(),
            version: device.version.clone(),
            online_since: rfc3339(live.since),
        };
        announce(&key, &online);
        Joined {
            link,
            commands,
            replaced: live.replaced.clone(),
            last_pong: live.last_pong.clone(),
            scopes: device.scopes.clone(),
            resync: device.scopes.list(),
        }
    }

    /// A connection ended: marks the device offline when this connection is
    /// still its current one, and then `announce`s its `runtime_offline`
    /// (under the lock, as in [`Registry::join`]).
    pub(super) fn leave(&self, link: &Link, reason: &str, announce: impl FnOnce(&RuntimeOffline)) {
        let mut state = self.lock();
        let Some(device) = state.devices.get_mut(&link.runtime_id) else { return };
        if device.live.as_ref().is_none_or(|l| l.link.generation != link.generation) {
            return;
        }
        device.live = None;
        device.offline_since = Some(SystemTime::now());
        announce(&RuntimeOffline {
            kind: "runtime_offline",
            runtime_id: link.runtime_id.to_string(),
            reason: reason.into(),
        });
    }

    /// Picks the runtime a command goes to: the named one, or the only one online.
    pub(super) fn route(&self, name: Option<&str>) -> Result<Target, RouteError> {
        let state = self.lock();
        if let Some(name) = name {
            let device = state.devices.get(name).ok_or_else(|| RouteError::Unknown(name.to_owned()))?;
            let live = device.live.as_ref().ok_or_else(|| RouteError::Offline(name.to_owned()))?;
            return Ok(Target::Local(live.link.clone()));
        }
        let mut online = state.devices.values().filter_map(|d| d.live.as_ref());
        match (online.next(), online.next()) {
            (None, _) => Err(RouteError::NoneOnline),
            (Some(only), None) => Ok(Target::Local(only.link.clone())),
            (Some(_), Some(_)) => {
                let mut ids: Vec<String> =
                    state.devices.iter().filter(|(_, d)| d.live.is_some()).map(|(k, _)| k.to_string()).collect();
                ids.sort();
                Err(RouteError::Ambiguous(ids))
            }
        }
    }

    /// All known runtimes, sorted by id.
    pub(super) fn list(&self) -> Vec<RuntimeInfo> {
        let state = self.lock();
        let mut list: Vec<RuntimeInfo> = state.devices.iter().map(|(id, d)| d.info(id)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Runtimes with an open socket.
    pub(super) fn online_count(&self) -> usize {
        self.lock().devices.values().filter(|d| d.live.is_some()).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Device {
    fn info(&self, id: &str) -> RuntimeInfo {
        let pong = self.live.as_ref().map(|l| l.last_pong.load(Ordering::Relaxed)).filter(|ms| *ms > 0);
        RuntimeInfo {
            id: id.to_owned(),
            online: self.live.is_some(),
            connection_id: self.connection_id.clone(),
            connection_name: self.connection_name.clone(),
            online_since: self.live.as_ref().map(|l| rfc3339(l.since)),
            last_pong_at: pong.map(|ms| rfc3339(UNIX_EPOCH + Duration::from_millis(ms))),
            offline_since: self.offline_since.map(rfc3339),
            version: self.version.clone(),
            os: self.os.clone(),
            node_version: self.node_version.clone(),
        }
    }
}

/// `SystemTime` as RFC 3339 with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now as Unix milliseconds.
pub fn unix_millis_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
