//! [`Runtimes`]: the runtime side as the rest of the bridge sees it — the
//! registry, the socket tasks, the commands awaiting replies, and where
//! runtime events go. Registry changes publish their status events here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::peers::{PeerError, Peers, Registration};
use super::registry::{Joined, Registry, RegistryFull};
use super::scopes::SharedScopes;
use super::sink::{EventSink, HubSink};
use super::{Link, Pending, RouteError, RuntimeInfo, RuntimePage, Settings, Target};
use crate::hub::{Draft, Hub};
use crate::protocol::Scope;

/// Why a registration was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A new device, and the registry keeps as many as it may.
    #[error(transparent)]
    Full(#[from] RegistryFull),
    /// The cluster's engine did not take it.
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// The runtimes of this bridge. Cheap to clone.
#[derive(Clone)]
pub struct Runtimes {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// The event log as subscribers see it (turns are followed on it).
    pub(super) hub: Hub,
    /// Where socket tasks append events.
    pub(super) events: Arc<dyn EventSink>,
    pub(super) pending: Pending,
    pub(super) settings: Settings,
    /// Cancelled at shutdown: every socket closes with 1001.
    pub(super) shutdown: CancellationToken,
    /// The socket tasks, awaited at shutdown.
    pub(super) tasks: TaskTracker,
    /// The other instances, in cluster mode.
    pub(super) peers: Option<Arc<dyn Peers>>,
    /// Cancelled to close every local runtime socket (1012) when this
    /// instance fences itself; replaced by a fresh one each time.
    fence: std::sync::Mutex<CancellationToken>,
    registry: Registry,
    connects: AtomicU64,
}

/// An event read back from a cluster's shared log, with what the log
/// records besides the event: which instance appended it, for which
/// connection generation, and the `request_id` it answers.
pub struct Logged<'a> {
    /// The runtime it came from or is about.
    pub runtime_id: &'a str,
    /// The event type.
    pub kind: &'a str,
    /// The instance that appended it.
    pub node: &'a str,
    /// The connection generation it came from.
    pub generation: u64,
    /// The `request_id` a reply answers.
    pub reply_to: Option<&'a str>,
    /// Its scope, to re-sync after a reconnect here.
    pub agent_id: Option<&'a str>,
    /// Its scope's conversation.
    pub conversation_id: Option<&'a str>,
    /// When it was appended.
    pub at: SystemTime,
    /// Its JSON.
    pub data: Bytes,
}

impl Runtimes {
    /// The embedded runtimes: events go straight to `hub`.
    pub fn new(settings: Settings, hub: Hub) -> Self {
        let pending = Pending::new(settings.max_pending);
        let events = Arc::new(HubSink::new(hub.clone(), pending.clone()));
        Self::build(settings, hub, pending, events, None, 0)
    }

    /// The runtimes of one instance of a cluster: events go to the shared
    /// log (`events`), whose mirror fills `hub` and completes `pending`
    /// (see [`Runtimes::on_logged`]); commands for runtimes of other
    /// instances go through `peers`. Connection generations start after
    /// `first_generation`, which must keep them apart from other instances'.
    pub fn clustered(
        settings: Settings,
        hub: Hub,
        pending: Pending,
        events: Arc<dyn EventSink>,
        peers: Arc<dyn Peers>,
        first_generation: u64,
    ) -> Self {
        Self::build(settings, hub, pending, events, Some(peers), first_generation)
    }

    fn build(
        settings: Settings,
        hub: Hub,
        pending: Pending,
        events: Arc<dyn EventSink>,
        peers: Option<Arc<dyn Peers>>,
        first_generation: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                events,
                pending,
                settings,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                peers,
                fence: std::sync::Mutex::default(),
                registry: Registry::new(first_generation, settings.forget_offline_after),
                connects: AtomicU64::new(0),
            }),
        }
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
                self.inner.registry.has_room(device_id)?;
                let id = peers.register(&registration).await?;
                Ok(self.inner.registry.register(registration, Some(id)))
            }
            None => Ok(self.inner.registry.register_bounded(registration, None)?),
        }
    }

    /// Whether a socket of `device_id` may be served: a new device only
    /// while fewer than [`MAX_OFFLINE_DEVICES`](super::MAX_OFFLINE_DEVICES)
    /// are kept without a socket.
    pub fn has_room(&self, device_id: &str) -> Result<(), RegistryFull> {
        self.inner.registry.has_room(device_id)
    }

    /// The device a registration's connection id belongs to (registered on
    /// any instance, in a cluster).
    pub async fn device_of_connection(&self, connection_id: &str) -> Result<Option<Arc<str>>, PeerError> {
        if let Some(device) = self.inner.registry.device_of_connection(connection_id) {
            return Ok(Some(device));
        }
        let Some(peers) = &self.inner.peers else { return Ok(None) };
        let Some(registration) = peers.registration(connection_id).await? else { return Ok(None) };
        self.inner.registry.register(registration, Some(connection_id.to_owned()));
        Ok(self.inner.registry.device_of_connection(connection_id))
    }

    /// Picks the runtime a command goes to: the named one, or the only one online.
    pub fn route(&self, name: Option<&str>) -> Result<Target, RouteError> {
        self.inner.registry.route(name)
    }

    /// All known runtimes, sorted by id (of the whole cluster).
    pub async fn list(&self) -> Result<Vec<RuntimeInfo>, PeerError> {
        match &self.inner.peers {
            Some(peers) => peers.list().await,
            None => Ok(self.inner.registry.list()),
        }
    }

    /// At most `limit` runtimes with ids after `after`, sorted by id (of
    /// the whole cluster).
    pub async fn page(&self, after: Option<&str>, limit: usize) -> Result<RuntimePage, PeerError> {
        match &self.inner.peers {
            Some(peers) => peers.page(after, limit).await,
            None => Ok(self.inner.registry.page(after, limit)),
        }
    }

    /// One runtime as this instance's registry knows it.
    pub fn info(&self, runtime_id: &str) -> Option<RuntimeInfo> {
        self.inner.registry.info(runtime_id)
    }

    /// Follows a runtime another instance holds (read from the cluster's
    /// record when this instance starts).
    pub fn remote_online(&self, runtime_id: &str, node: &str, generation: u64, since: SystemTime) {
        self.inner.registry.remote_online(runtime_id, node, generation, since);
    }

    /// Closes every local runtime socket (1012, so the runtimes reconnect,
    /// elsewhere if they can): this instance cannot reach the cluster's engine.
    pub fn fence(&self) {
        let old = std::mem::take(&mut *self.inner.fence.lock().unwrap_or_else(|p| p.into_inner()));
        old.cancel();
    }

    /// The token that closes this connection when the instance fences itself.
    pub(super) fn fence_token(&self) -> CancellationToken {
        self.inner.fence.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a new runtime socket may be served here (in a cluster: only
    /// while the engine answers).
    pub(super) fn accepts(&self) -> Result<(), PeerError> {
        self.inner.peers.as_ref().map_or(Ok(()), |p| p.check())
    }

    /// Runtimes with an open socket.
    pub fn online_count(&self) -> usize {
        self.inner.registry.online_count()
    }

    /// Connections accepted since start.
    pub fn connects(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Commands awaiting their reply.
    pub fn pending_replies(&self) -> usize {
        self.inner.pending.len()
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
        let queue = self.inner.settings.command_queue;
        let joined = self.inner.registry.join(device_id, connection_name, queue, |link, online| {
            self.publish_status(link, "runtime_online", online);
        });
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        joined
    }

    /// A connection's socket task ended: publishes `runtime_offline` when it
    /// was its device's current one, and fails its awaited commands.
    pub(super) fn disconnected(&self, link: &Link, reason: &str) {
        self.inner.registry.leave(link, reason, |offline| {
            self.publish_status(link, "runtime_offline", offline);
        });
        self.inner.pending.fail_connection(&link.runtime_id, link.generation);
    }

    /// A local runtime answered a ping.
    pub(super) fn pong(&self, link: &Link, at: SystemTime) {
        if let Some(peers) = &self.inner.peers {
            peers.pong(&link.runtime_id, link.generation, at);
        }
    }

    /// One event of the cluster's shared log, read back by this instance's
    /// mirror (after it was applied to the hub): completes the commands
    /// waiting for it, and follows runtimes that come and go on other
    /// instances.
    pub fn on_logged(&self, logged: &Logged<'_>, this_node: &str) {
        if let Some(request_id) = logged.reply_to {
            self.inner.pending.complete(&Arc::from(logged.runtime_id), request_id, logged.data.clone());
        }
        let foreign = logged.node != this_node;
        match logged.kind {
            "runtime_online" if foreign => {
                self.inner.registry.remote_online(logged.runtime_id, logged.node, logged.generation, logged.at);
            }
            "runtime_offline" => {
                if foreign {
                    self.inner.registry.remote_offline(logged.runtime_id, logged.node, logged.generation, logged.at);
                }
                self.inner.pending.fail_connection(logged.runtime_id, logged.generation);
            }
            _ => {}
        }
        if foreign && let Some(scope) = Scope::of_event(logged.agent_id, logged.conversation_id) {
            self.scopes_of(logged.runtime_id).note(scope);
        }
    }

    /// Appends `runtime_online` again for every local runtime: the shared
    /// log lost its data (and with it the record of who holds what).
    pub fn reannounce(&self) {
        for link in self.inner.registry.local_links() {
            if let Some(online) = self.inner.registry.online_event(&link) {
                self.publish_status(&link, "runtime_online", &online);
            }
        }
    }

    fn scopes_of(&self, runtime_id: &str) -> SharedScopes {
        self.inner.registry.scopes(runtime_id)
    }

    fn publish_status(&self, link: &Link, kind: &str, body: &impl Serialize) {
        let draft = Draft {
            kind: kind.into(),
            runtime_id: Some(link.runtime_id.clone()),
            agent_id: None,
            conversation_id: None,
            data: serde_json::to_string(body).expect("status events serialise"),
        };
        self.inner.events.append(link, draft, None);
    }
}
