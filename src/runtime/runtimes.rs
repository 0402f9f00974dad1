//! [`Runtimes`]: the runtime side as the rest of the bridge sees it — the
//! registry, the socket tasks, the commands awaiting replies, and where
//! runtime events go. Registry changes publish their status events here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::registry::{Joined, Registry};
use super::sink::{EventSink, HubSink};
use super::{Link, Pending, RouteError, RuntimeInfo, Settings, Target};
use crate::hub::{Draft, Hub};

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
    registry: Registry,
    connects: AtomicU64,
}

impl Runtimes {
    /// The embedded runtimes: events go straight to `hub`.
    pub fn new(settings: Settings, hub: Hub) -> Self {
        let pending = Pending::new(settings.max_pending);
        let events = Arc::new(HubSink::new(hub.clone(), pending.clone()));
        Self::with_sink(settings, hub, pending, events)
    }

    /// Runtimes whose events go to `events`; `pending` is the set of awaited
    /// replies that the sink's log completes.
    pub fn with_sink(settings: Settings, hub: Hub, pending: Pending, events: Arc<dyn EventSink>) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                events,
                pending,
                settings,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                registry: Registry::default(),
                connects: AtomicU64::new(0),
            }),
        }
    }

    /// Records a registration; returns the device's (stable) connection id.
    pub fn register(&self, device_id: &str, connection_name: Option<String>, metadata: Option<&Value>) -> String {
        self.inner.registry.register(device_id, connection_name, metadata)
    }

    /// The device a registration's connection id belongs to.
    pub fn device_of_connection(&self, connection_id: &str) -> Option<Arc<str>> {
        self.inner.registry.device_of_connection(connection_id)
    }

    /// Picks the runtime a command goes to: the named one, or the only one online.
    pub fn route(&self, name: Option<&str>) -> Result<Target, RouteError> {
        self.inner.registry.route(name)
    }

    /// All known runtimes, sorted by id.
    pub fn list(&self) -> Vec<RuntimeInfo> {
        self.inner.registry.list()
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
        let joined = self.inner.registry.join(device_id, connection_name, queue, |runtime_id, online| {
            self.publish_status(runtime_id, "runtime_online", online);
        });
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        joined
    }

    /// A connection's socket task ended: publishes `runtime_offline` when it
    /// was its device's current one, and fails its awaited commands.
    pub(super) fn disconnected(&self, link: &Link, reason: &str) {
        self.inner.registry.leave(link, reason, |offline| {
            self.publish_status(&link.runtime_id, "runtime_offline", offline);
        });
        self.inner.pending.fail_connection(&link.runtime_id, link.generation);
    }

    fn publish_status(&self, runtime_id: &Arc<str>, kind: &str, body: &impl Serialize) {
        let draft = Draft {
            kind: kind.into(),
            runtime_id: Some(runtime_id.clone()),
            agent_id: None,
            conversation_id: None,
            data: serde_json::to_string(body).expect("status events serialise"),
        };
        self.inner.events.append(runtime_id, draft, None);
    }
}
