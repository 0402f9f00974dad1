//! Which runtimes exist, keyed by `deviceId`, which are online, and where a
//! command to one of them goes. State only: the events these changes cause
//! are published by [`super::Runtimes`].
//!
//! A new connection from a device replaces its old one; each connection has a
//! generation, and only the current generation's close marks the device
//! offline (the seed's `if (runtime === socket)` rule).

mod bounds;
mod registrations;
mod remote;
mod views;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::link::{Link, Outgoing};
use super::scopes::SharedScopes;
use super::target::{Remote, RouteError, Target};
use crate::protocol::Scope;
use crate::protocol::bridge::{RuntimeOffline, RuntimeOnline};

pub use bounds::{MAX_OFFLINE_DEVICES, RegistryFull};
pub use views::{rfc3339, unix_millis_now};

/// The device registry. Cheap operations under one lock, never held across
/// `.await`. Bounded: a device that stays offline (or registered and never
/// connected) for `forget_after` is forgotten with its connection id, so a
/// churn of one-off device ids cannot grow it forever; and at most
/// [`MAX_OFFLINE_DEVICES`] devices without a socket are kept at once.
pub(super) struct Registry {
    state: Mutex<State>,
    next_generation: AtomicU64,
    forget_after: Duration,
}

struct State {
    devices: HashMap<Arc<str>, Device>,
    /// connectionId → deviceId, from registrations.
    connections: HashMap<String, Arc<str>>,
    /// When offline devices were last looked for (see [`Registry::sweep`]).
    swept: SystemTime,
}

impl Default for State {
    fn default() -> Self {
        Self { devices: HashMap::new(), connections: HashMap::new(), swept: SystemTime::now() }
    }
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
    /// Its last registration, connection or disconnection (`None`: just now).
    seen: Option<SystemTime>,
}

struct Live {
    owner: Owner,
    since: SystemTime,
    last_pong: Arc<AtomicU64>,
    replaced: CancellationToken,
}

/// Who holds a live device's socket.
enum Owner {
    Local(Link),
    Remote(Remote),
}

impl Live {
    fn target(&self) -> Target {
        match &self.owner {
            Owner::Local(link) => Target::Local(link.clone()),
            Owner::Remote(remote) => Target::Remote(remote.clone()),
        }
    }

    fn is(&self, node: Option<&str>, generation: u64) -> bool {
        match (&self.owner, node) {
            (Owner::Local(link), None) => link.generation == generation,
            (Owner::Remote(r), Some(node)) => r.generation == generation && *r.node == *node,
            _ => false,
        }
    }
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
    /// A registry whose connection generations follow `first`, forgetting
    /// devices offline for `forget_after`.
    pub(super) fn new(first: u64, forget_after: Duration) -> Self {
        Self { state: Mutex::default(), next_generation: AtomicU64::new(first), forget_after }
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
        announce: impl FnOnce(&Link, &RuntimeOnline),
    ) -> Joined {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = self.lock();
        self.sweep(&mut state);
        let key = state.devices.get_key_value(device_id).map_or_else(|| Arc::from(device_id), |(k, _)| k.clone());
        let device = state.devices.entry(key.clone()).or_default();
        let (link, commands) = Link::new(key.clone(), generation, queue);
        let live = Live {
            owner: Owner::Local(link.clone()),
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
        let online = device.online_event(&key);
        announce(&link, &online);
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
        if device.live.as_ref().is_none_or(|l| !l.is(None, link.generation)) {
            return;
        }
        device.live = None;
        device.offline_since = Some(SystemTime::now());
        device.seen = device.offline_since;
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
            return Ok(live.target());
        }
        let mut online = state.devices.values().filter_map(|d| d.live.as_ref());
        match (online.next(), online.next()) {
            (None, _) => Err(RouteError::NoneOnline),
            (Some(only), None) => Ok(only.target()),
            (Some(_), Some(_)) => {
                let mut ids: Vec<String> =
                    state.devices.iter().filter(|(_, d)| d.live.is_some()).map(|(k, _)| k.to_string()).collect();
                ids.sort();
                Err(RouteError::Ambiguous(ids))
            }
        }
    }

    /// The current connection of `device_id` when it is served here and of
    /// `generation`.
    pub(super) fn local_link(&self, device_id: &str, generation: u64) -> Option<Link> {
        let state = self.lock();
        match state.devices.get(device_id)?.live.as_ref().map(|l| &l.owner) {
            Some(Owner::Local(link)) if link.generation == generation => Some(link.clone()),
            _ => None,
        }
    }

    /// A device's scopes (a new, empty set for an unknown device).
    pub(super) fn scopes(&self, device_id: &str) -> SharedScopes {
        let mut state = self.lock();
        let key = state.devices.get_key_value(device_id).map_or_else(|| Arc::from(device_id), |(k, _)| k.clone());
        state.devices.entry(key).or_default().scopes.clone()
    }

    /// The local connections (to re-announce after the shared log lost them).
    pub(super) fn local_links(&self) -> Vec<Link> {
        let state = self.lock();
        let local = state.devices.values().filter_map(|d| match d.live.as_ref().map(|l| &l.owner) {
            Some(Owner::Local(link)) => Some(link.clone()),
            _ => None,
        });
        local.collect()
    }

    /// Runtimes with an open socket.
    pub(super) fn online_count(&self) -> usize {
        self.lock().devices.values().filter(|d| d.live.is_some()).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
