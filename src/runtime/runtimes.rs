//! [`Runtimes`]: the runtime side as the rest of the bridge sees it — the
//! core every door calls (`dispatch`, `write_local`, `resolve`, `serve`),
//! registrations, the socket tasks, and where runtime events go. Registry
//! changes publish their status events here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handle::{Core, status_draft};
use super::link::CommandFrame;
use super::peers::{Peers, Registration};
use super::registry::{Joined, RegistryFull};
use super::sink::{EventSink, HubSink};
use super::target::KnownScope;
use super::{
    DispatchError, Handle, Link, Pending, RouteError, RuntimeInfo, RuntimePage, Settings, Target, Unavailable,
};
use crate::hub::Hub;

/// Why a registration was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A new device, and the registry keeps as many as it may.
    #[error(transparent)]
    Full(#[from] RegistryFull),
    /// The cluster's engine did not take it.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// The runtimes of this bridge. Cheap to clone.
#[derive(Clone)]
pub struct Runtimes {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// The registry, the awaited commands and the fence, as the event
    /// log's backends reach them too.
    pub(super) handle: Handle,
    /// The event log as subscribers see it (turns are followed on it).
    pub(super) hub: Hub,
    /// Where socket tasks append events.
    pub(super) events: Arc<dyn EventSink>,
    /// Cancelled at shutdown: every socket closes with 1001.
    pub(super) shutdown: CancellationToken,
    /// The socket tasks, awaited at shutdown.
    pub(super) tasks: TaskTracker,
    /// The other instances, in cluster mode.
    pub(super) peers: Option<Arc<dyn Peers>>,
    connects: AtomicU64,
}

impl Runtimes {
    /// The embedded runtimes: events go straight to `hub`.
    pub fn new(settings: Settings, hub: Hub) -> Self {
        let handle = Handle::new(settings, 0);
        let events = Arc::new(HubSink::new(hub.clone(), handle.clone()));
        Self::build(handle, hub, events, None)
    }

    /// The runtimes of one instance of a cluster, whose backend holds
    /// `handle`: events go to the shared log (`events`), whose mirror fills
    /// `hub` and applies them ([`Handle::on_applied`]); commands for
    /// runtimes of other instances go through `peers`.
    pub fn clustered(handle: Handle, hub: Hub, events: Arc<dyn EventSink>, peers: Arc<dyn Peers>) -> Self {
        Self::build(handle, hub, events, Some(peers))
    }

    fn build(handle: Handle, hub: Hub, events: Arc<dyn EventSink>, peers: Option<Arc<dyn Peers>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                handle,
                hub,
                events,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                peers,
                connects: AtomicU64::new(0),
            }),
        }
    }

    /// The part of the runtimes an event log's backend calls back into.
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }

    fn core(&self) -> &Core {
        self.inner.handle.core()
    }

    pub(super) fn settings(&self) -> Settings {
        self.core().settings
    }

    pub(super) fn pending(&self) -> &Pending {
        &self.core().pending
    }

    /// Records a registration (for every instance, in a cluster); returns
    /// the device's (stable) connection id. A new device is refused while
    /// [`MAX_OFFLINE_DEVICES`](super::MAX_OFFLINE_DEVICES) are kept without
    /// a socket.
    pub async fn register(
        &self,
        device_id: &str,
        connection_name: Option<String>,
        metadata: Option<&Value>,
    ) -> Result<String, RegisterError> {
        let text = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str).map(str::to_owned);
        let registration = Registration {
            device_id: device_id.to_owned(),
            connection_name,
            version: text("lettaCodeVersion"),
            os: text("os"),
            node_version: text("nodeVersion"),
        };
        match &self.inner.peers {
            Some(peers) => {
                // Checked here, where the registration is accepted: the
                // engine's record serves other instances' sockets later.
                self.core().registry.has_room(device_id)?;
                let id = peers.register(&registration).await?;
                Ok(self.core().registry.register(registration, Some(id)))
            }
            None => Ok(self.core().registry.register_bounded(registration, None)?),
        }
    }

    /// Whether a socket of `device_id` may be served: a new device only
    /// while fewer than [`MAX_OFFLINE_DEVICES`](super::MAX_OFFLINE_DEVICES)
    /// are kept without a socket.
    pub fn has_room(&self, device_id: &str) -> Result<(), RegistryFull> {
        self.core().registry.has_room(device_id)
    }

    /// The device a registration's connection id belongs to (registered on
    /// any instance, in a cluster).
    pub async fn device_of_connection(&self, connection_id: &str) -> Result<Option<Arc<str>>, Unavailable> {
        if let Some(device) = self.core().registry.device_of_connection(connection_id) {
            return Ok(Some(device));
        }
        let Some(peers) = &self.inner.peers else { return Ok(None) };
        let Some(registration) = peers.registration(connection_id).await? else { return Ok(None) };
        self.core().registry.register(registration, Some(connection_id.to_owned()));
        Ok(self.core().registry.device_of_connection(connection_id))
    }

    /// Picks the runtime a command goes to: the named one, or the only one
    /// online; and where its socket is served (here, or which instance).
    pub fn resolve(&self, name: Option<&str>) -> Result<Target, RouteError> {
        self.core().registry.route(name)
    }

    /// The scopes (agent and conversation) seen on each runtime known here:
    /// what a door can offer to address without naming a runtime.
    pub fn scopes_seen(&self) -> Vec<KnownScope> {
        self.core().registry.scopes_seen()
    }

    /// Writes `frame` to the socket of `runtime_id`'s connection
    /// `generation`, served here; see [`Handle::write_local`].
    pub async fn write_local(
        &self,
        runtime_id: &str,
        generation: u64,
        frame: CommandFrame,
        deadline: Instant,
    ) -> Result<(), DispatchError> {
        self.inner.handle.write_local(runtime_id, generation, frame, deadline).await
    }

    /// All known runtimes, sorted by id (of the whole cluster).
    pub async fn list(&self) -> Result<Vec<RuntimeInfo>, Unavailable> {
        match &self.inner.peers {
            Some(peers) => peers.list().await,
            None => Ok(self.core().registry.list()),
        }
    }

    /// At most `limit` runtimes with ids after `after`, sorted by id (of
    /// the whole cluster).
    pub async fn page(&self, after: Option<&str>, limit: usize) -> Result<RuntimePage, Unavailable> {
        match &self.inner.peers {
            Some(peers) => peers.page(after, limit).await,
            None => Ok(self.core().registry.page(after, limit)),
        }
    }

    /// The token that closes a connection when this instance fences itself.
    pub(super) fn fence_token(&self) -> CancellationToken {
        self.inner.handle.fence_token()
    }

    /// Whether a new runtime socket may be served here (in a cluster: only
    /// while the engine answers).
    pub(super) fn accepts(&self) -> Result<(), Unavailable> {
        self.inner.peers.as_ref().map_or(Ok(()), |p| p.check())
    }

    /// Runtimes with an open socket.
    pub fn online_count(&self) -> usize {
        self.core().registry.online_count()
    }

    /// Connections accepted since start.
    pub fn connects(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Commands awaiting their reply.
    pub fn pending_replies(&self) -> usize {
        self.core().pending.len()
    }

    /// Socket tasks running.
    pub fn tasks(&self) -> usize {
        self.inner.tasks.len()
    }

    /// Closes every runtime socket (1001) and waits for their tasks to end,
    /// so that their `runtime_offline` events are published.
    pub async fn close(&self) {
        self.inner.tasks.close();
        self.inner.shutdown.cancel();
        self.inner.tasks.wait().await;
    }

    /// Makes a new connection its device's current one and publishes
    /// `runtime_online`.
    pub(super) fn connect(&self, device_id: &str, connection_name: Option<String>) -> Joined {
        let queue = self.settings().command_queue;
        let joined = self.core().registry.join(device_id, connection_name, queue, |link, online| {
            self.publish_status(link, "runtime_online", online);
        });
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        joined
    }

    /// A connection's socket task ended: publishes `runtime_offline` when it
    /// was its device's current one, and fails its awaited commands.
    ///
    /// Those fail where the log applies that event ([`super::Handle::on_applied`]),
    /// so after every reply the runtime sent before it: in a cluster a reply
    /// may still be on its way through the shared log when the socket closes
    /// (failing the waits here lost it: a `502` for a command the runtime had
    /// answered, seen in tests/cluster/rolling.rs). A connection a newer one
    /// replaced publishes nothing; its waits fail here.
    pub(super) fn disconnected(&self, link: &Link, reason: &str) {
        let mut announced = false;
        self.core().registry.leave(link, reason, |offline| {
            self.publish_status(link, "runtime_offline", offline);
            announced = true;
        });
        if !announced {
            self.core().pending.fail_connection(&link.runtime_id, link.generation);
        }
    }

    /// A local runtime answered a ping.
    pub(super) fn pong(&self, link: &Link, at: SystemTime) {
        if let Some(peers) = &self.inner.peers {
            peers.pong(&link.runtime_id, link.generation, at);
        }
    }

    fn publish_status(&self, link: &Link, kind: &str, body: &impl Serialize) {
        self.inner.events.append(link, status_draft(link, kind, body), None);
    }
}
