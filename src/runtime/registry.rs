//! Which runtimes exist, keyed by `deviceId`, and which are online.
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
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{Pending, Scope, SharedScopes};
use crate::hub::{Draft, Hub};
use crate::protocol::bridge::{RuntimeOffline, RuntimeOnline};

/// A frame queued for a runtime's socket; `written` fires once it is on the wire.
pub struct Outgoing {
    pub text: String,
    /// The command's runtime scope, remembered for re-sync after a reconnect.
    pub scope: Option<Scope>,
    pub written: oneshot::Sender<()>,
}

/// A cheap handle to one connection of one runtime.
#[derive(Clone)]
pub struct Link {
    pub runtime_id: Arc<str>,
    pub generation: u64,
    tx: mpsc::Sender<Outgoing>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the runtime's command queue is full")]
    Full,
    #[error("the runtime disconnected")]
    Gone,
}

impl Link {
    /// Queues `text` for the socket; resolves once it is written.
    pub fn send(&self, text: String, scope: Option<Scope>) -> Result<oneshot::Receiver<()>, SendError> {
        let (written, rx) = oneshot::channel();
        self.tx.try_send(Outgoing { text, scope, written }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })?;
        Ok(rx)
    }
}

/// What `connect` hands the new socket task.
pub struct Connected {
    pub link: Link,
    pub commands: mpsc::Receiver<Outgoing>,
    /// Cancelled when a newer connection of the same device takes over.
    pub replaced: CancellationToken,
    /// Unix millis of the last pong control frame (0: none yet).
    pub last_pong: Arc<AtomicU64>,
    /// The device's scopes, kept across its connections.
    pub scopes: SharedScopes,
    /// Scopes to `sync` now: those seen before, when this is a reconnect.
    pub resync: Vec<Scope>,
}

/// Why a command has no runtime to go to.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("no runtime is online")]
    NoneOnline,
    #[error("runtime {0:?} is offline")]
    Offline(String),
    #[error("no runtime {0:?} is known")]
    Unknown(String),
    #[error("several runtimes are online; name one with ?runtime= or /runtimes/{{id}}/…")]
    Ambiguous(Vec<String>),
}

/// A runtime as `GET /runtimes` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuntimeInfo {
    /// The runtime's `deviceId` (`direct` for a plain connection without one).
    pub id: String,
    pub online: bool,
    /// Assigned at registration; absent for direct connections.
    pub connection_id: Option<String>,
    pub connection_name: Option<String>,
    /// RFC 3339.
    pub online_since: Option<String>,
    /// RFC 3339 time of the last WebSocket pong.
    pub last_pong_at: Option<String>,
    /// RFC 3339.
    pub offline_since: Option<String>,
    /// `lettaCodeVersion` from registration.
    pub version: Option<String>,
    pub os: Option<String>,
    pub node_version: Option<String>,
}

#[derive(Clone)]
pub struct Runtimes {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Hub,
    pending: Pending,
    command_queue: usize,
    /// Short map operations only; never held across `.await`.
    state: Mutex<State>,
    next_generation: AtomicU64,
    connects: AtomicU64,
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

impl Runtimes {
    pub fn new(hub: Hub, pending: Pending, command_queue: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                pending,
                command_queue,
                state: Mutex::default(),
                next_generation: AtomicU64::new(1),
                connects: AtomicU64::new(0),
            }),
        }
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn pending(&self) -> &Pending {
        &self.inner.pending
    }

    /// Records a registration; returns the device's (stable) connection id.
    pub fn register(&self, device_id: &str, connection_name: Option<String>, metadata: Option<&Value>) -> String {
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
    pub fn device_of_connection(&self, connection_id: &str) -> Option<Arc<str>> {
        self.lock().connections.get(connection_id).cloned()
    }

    /// Makes a new connection the device's current one, replacing (and
    /// closing) any older one, and publishes `runtime_online`.
    pub fn connect(&self, device_id: &str, connection_name: Option<String>) -> Connected {
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, commands) = mpsc::channel(self.inner.command_queue);
        let mut state = self.lock();
        let key = state.devices.get_key_value(device_id).map_or_else(|| Arc::from(device_id), |(k, _)| k.clone());
        let device = state.devices.entry(key.clone()).or_default();
        let link = Link { runtime_id: key.clone(), generation, tx };
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
        let connected = Connected {
            link,
            commands,
            replaced: live.replaced.clone(),
            last_pong: live.last_pong.clone(),
            scopes: device.scopes.clone(),
            resync: device.scopes.list(),
        };
        let online = RuntimeOnline {
            kind: "runtime_online",
            runtime_id: key.to_string(),
            connection_name: device.connection_name.clone(),
            version: device.version.clone(),
            online_since: rfc3339(live.since),
        };
        self.publish_status(&key, "runtime_online", &online);
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        drop(state);
        connected
    }

    /// A connection's socket task ended. Marks the device offline only when
    /// this connection is still its current one; fails its awaited commands.
    pub fn disconnected(&self, link: &Link, reason: &str) {
        let mut state = self.lock();
        if let Some(device) = state.devices.get_mut(&link.runtime_id) {
            let current = device.live.as_ref().is_some_and(|l| l.link.generation == link.generation);
            if current {
                device.live = None;
                device.offline_since = Some(SystemTime::now());
                let offline = RuntimeOffline {
                    kind: "runtime_offline",
                    runtime_id: link.runtime_id.to_string(),
                    reason: reason.into(),
                };
                self.publish_status(&link.runtime_id, "runtime_offline", &offline);
            }
        }
        drop(state);
        self.inner.pending.fail_connection(&link.runtime_id, link.generation);
    }

    /// Picks the runtime a command goes to: the named one, or the only one online.
    pub fn route(&self, name: Option<&str>) -> Result<Link, RouteError> {
        let state = self.lock();
        if let Some(name) = name {
            let device = state.devices.get(name).ok_or_else(|| RouteError::Unknown(name.to_owned()))?;
            return device.live.as_ref().map(|l| l.link.clone()).ok_or_else(|| RouteError::Offline(name.to_owned()));
        }
        let mut online = state.devices.values().filter_map(|d| d.live.as_ref());
        match (online.next(), online.next()) {
            (None, _) => Err(RouteError::NoneOnline),
            (Some(only), None) => Ok(only.link.clone()),
            (Some(_), Some(_)) => {
                let mut ids: Vec<String> =
                    state.devices.iter().filter(|(_, d)| d.live.is_some()).map(|(k, _)| k.to_string()).collect();
                ids.sort();
                Err(RouteError::Ambiguous(ids))
            }
        }
    }

    /// All known runtimes, sorted by id.
    pub fn list(&self) -> Vec<RuntimeInfo> {
        let state = self.lock();
        let mut list: Vec<RuntimeInfo> = state.devices.iter().map(|(id, d)| d.info(id)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    pub fn online_count(&self) -> usize {
        self.lock().devices.values().filter(|d| d.live.is_some()).count()
    }

    /// Connections accepted since start.
    pub fn connects(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    fn publish_status(&self, runtime_id: &Arc<str>, kind: &str, body: &impl Serialize) {
        self.inner.hub.publish(Draft {
            kind: kind.into(),
            runtime_id: Some(runtime_id.clone()),
            agent_id: None,
            conversation_id: None,
            data: serde_json::to_string(body).expect("status events serialise"),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
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
