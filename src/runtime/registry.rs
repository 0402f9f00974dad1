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

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::link::{Link, Outgoing};
use super::peers::Registration;
use super::scopes::SharedScopes;
use super::target::{Remote, RouteError, RuntimeInfo, RuntimePage, Target};
use crate::protocol::Scope;
use crate::protocol::bridge::{RuntimeOffline, RuntimeOnline};

/// Most devices kept without an open socket (registered and never
/// connected, or offline), besides the time bound of `forget_after`: a new
/// device beyond it is refused (registration `503`, a direct socket closed
/// `1013`) until old ones are forgotten. Devices already known are never
/// refused, and neither are devices other instances of a cluster report.
pub const MAX_OFFLINE_DEVICES: usize = 10_000;

/// A new device cannot be recorded: [`MAX_OFFLINE_DEVICES`] are kept.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the bridge keeps {MAX_OFFLINE_DEVICES} runtimes without an open socket (registered and never connected, or offline) and takes no new device until some are forgotten (LETTA_BRIDGE_FORGET_OFFLINE_AFTER); retry later"
)]
pub struct RegistryFull;

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

impl State {
    /// Devices without an open socket.
    fn offline(&self) -> usize {
        self.devices.values().filter(|d| d.live.is_none()).count()
    }
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

    /// Forgets devices offline (or never connected) for `forget_after`: at
    /// most once per quarter of it, on a registration or a connection, so
    /// the scan costs nothing per event.
    fn sweep(&self, state: &mut State) {
        let now = SystemTime::now();
        let due = now.duration_since(state.swept).is_ok_and(|d| d >= self.forget_after / 4);
        if due {
            self.sweep_now(state, now);
        }
    }

    /// Forgets devices offline (or never connected) for `forget_after`, now.
    fn sweep_now(&self, state: &mut State, now: SystemTime) {
        state.swept = now;
        let forget = self.forget_after;
        let stale = |d: &Device| {
            d.live.is_none() && d.seen.is_some_and(|seen| now.duration_since(seen).is_ok_and(|age| age >= forget))
        };
        let before = state.devices.len();
        state.devices.retain(|_, d| !stale(d));
        if state.devices.len() < before {
            let devices = &state.devices;
            state.connections.retain(|_, device| devices.contains_key(device));
            tracing::debug!(forgotten = before - state.devices.len(), "forgot runtimes offline for {forget:?}");
        }
    }

    /// Whether `device_id` may be recorded: it is known, or fewer than
    /// [`MAX_OFFLINE_DEVICES`] devices are without a socket (after
    /// forgetting the stale ones, when that many are).
    pub(super) fn has_room(&self, device_id: &str) -> Result<(), RegistryFull> {
        let mut state = self.lock();
        self.room(&mut state, device_id)
    }

    fn room(&self, state: &mut State, device_id: &str) -> Result<(), RegistryFull> {
        if state.devices.contains_key(device_id) || state.offline() < MAX_OFFLINE_DEVICES {
            return Ok(());
        }
        self.sweep_now(state, SystemTime::now());
        if state.offline() < MAX_OFFLINE_DEVICES { Ok(()) } else { Err(RegistryFull) }
    }

    /// Records a registration of a device this instance accepted, unless it
    /// is new and [`Registry::has_room`] says no; see [`Registry::register`].
    pub(super) fn register_bounded(
        &self,
        registration: Registration,
        id: Option<String>,
    ) -> Result<String, RegistryFull> {
        let mut state = self.lock();
        self.room(&mut state, &registration.device_id)?;
        Ok(self.record(&mut state, registration, id))
    }

    /// Records a registration; returns the device's connection id: `id`
    /// when given (a cluster assigns it), else the one it had, else a new one.
    pub(super) fn register(&self, registration: Registration, id: Option<String>) -> String {
        let mut state = self.lock();
        self.record(&mut state, registration, id)
    }

    fn record(&self, state: &mut State, registration: Registration, id: Option<String>) -> String {
        self.sweep(state);
        let key: Arc<str> = Arc::from(registration.device_id.as_str());
        let device = state.devices.entry(key.clone()).or_default();
        device.connection_name = registration.connection_name.or(device.connection_name.take());
        device.version = registration.version;
        device.os = registration.os;
        device.node_version = registration.node_version;
        device.seen = Some(SystemTime::now());
        if let Some(id) = id {
            device.connection_id = Some(id);
        }
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

    /// One runtime, as this registry knows it.
    pub(super) fn info(&self, device_id: &str) -> Option<RuntimeInfo> {
        let state = self.lock();
        state.devices.get_key_value(device_id).map(|(id, d)| d.info(id))
    }

    /// All known runtimes, sorted by id.
    pub(super) fn list(&self) -> Vec<RuntimeInfo> {
        let state = self.lock();
        let mut list: Vec<RuntimeInfo> = state.devices.iter().map(|(id, d)| d.info(id)).collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// At most `limit` runtimes with ids after `after`, sorted by id; and
    /// whether more follow.
    pub(super) fn page(&self, after: Option<&str>, limit: usize) -> RuntimePage {
        let state = self.lock();
        let mut ids: Vec<&Arc<str>> =
            state.devices.keys().filter(|id| after.is_none_or(|after| &***id > after)).collect();
        ids.sort_unstable();
        let more = ids.len() > limit;
        let runtimes = ids.into_iter().take(limit).map(|id| state.devices[id].info(id)).collect();
        RuntimePage { runtimes, more }
    }

    /// Another instance took `device_id`'s socket (read from the shared
    /// log): a local connection of the device is replaced, and commands go
    /// to that instance.
    pub(super) fn remote_online(&self, device_id: &str, node: &str, generation: u64, since: SystemTime) {
        let mut state = self.lock();
        let key = state.devices.get_key_value(device_id).map_or_else(|| Arc::from(device_id), |(k, _)| k.clone());
        let device = state.devices.entry(key.clone()).or_default();
        let remote = Remote { runtime_id: key, node: Arc::from(node), generation };
        let live =
            Live { owner: Owner::Remote(remote), since, last_pong: Arc::default(), replaced: CancellationToken::new() };
        if let Some(old) = device.live.replace(live) {
            old.replaced.cancel();
        }
        device.offline_since = None;
        device.seen = Some(SystemTime::now());
    }

    /// Another instance's connection of `device_id` ended (read from the
    /// shared log); a newer connection stays.
    pub(super) fn remote_offline(&self, device_id: &str, node: &str, generation: u64, at: SystemTime) {
        let mut state = self.lock();
        let Some(device) = state.devices.get_mut(device_id) else { return };
        if device.live.as_ref().is_some_and(|l| l.is(Some(node), generation)) {
            device.live = None;
            device.offline_since = Some(at);
            device.seen = Some(SystemTime::now());
        }
    }

    /// The `runtime_online` of a local connection, while it is current.
    pub(super) fn online_event(&self, link: &Link) -> Option<RuntimeOnline> {
        let state = self.lock();
        let (key, device) = state.devices.get_key_value(&link.runtime_id)?;
        device.live.as_ref().filter(|l| l.is(None, link.generation))?;
        Some(device.online_event(key))
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

impl Device {
    /// Its `runtime_online` (it must be live).
    fn online_event(&self, id: &Arc<str>) -> RuntimeOnline {
        RuntimeOnline {
            kind: "runtime_online",
            runtime_id: id.to_string(),
            connection_name: self.connection_name.clone(),
            version: self.version.clone(),
            online_since: rfc3339(self.live.as_ref().map_or_else(SystemTime::now, |l| l.since)),
        }
    }

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
            instance: None,
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
