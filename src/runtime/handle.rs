//! [`Handle`]: the part of the runtimes that the event log's backends call
//! back into — apply an event the log holds now ([`Handle::on_applied`]:
//! the one place where replies complete and other instances' runtimes are
//! followed, fed by the embedded sink and a cluster's mirror alike), write
//! a command to a socket served here ([`Handle::write_local`]: commands of
//! this instance and those forwarded by others alike), fence.
//!
//! It holds the registry and the awaited commands, and no event sink: a
//! sink (or a cluster) may hold it without an `Arc` cycle.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::link::CommandFrame;
use super::registry::Registry;
use super::{DispatchError, EventSink, Link, Pending, RuntimeInfo, Settings};
use crate::hub::{Draft, Event};
use crate::protocol::Scope;

/// This instance's runtimes as an event log's backend reaches them. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    core: Arc<Core>,
}

pub(super) struct Core {
    pub(super) settings: Settings,
    pub(super) registry: Registry,
    pub(super) pending: Pending,
    /// Cancelled to close every local runtime socket (1012) when this
    /// instance fences itself; replaced by a fresh one each time. A short
    /// swap under the lock, never held across `.await`.
    fence: Mutex<CancellationToken>,
}

/// One event as the log applied it (the hub holds it now), with what the
/// log records besides the event.
pub struct Applied<'a> {
    /// The event, as the hub holds it.
    pub event: &'a Event,
    /// The connection generation it came from or is about.
    pub generation: u64,
    /// The `request_id` it answers, when it is a reply frame.
    pub reply_to: Option<&'a str>,
    /// Which instance's runtime socket it came from.
    pub origin: Origin<'a>,
}

/// Which instance an applied event came from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// This one: the registry already knows what it says.
    Here,
    /// Another instance of the cluster, `node`, which appended it at `at`.
    Instance {
        /// The instance's id.
        node: &'a str,
        /// When the shared log took it.
        at: SystemTime,
    },
}

impl Handle {
    /// The runtimes' shared state; connection generations start after
    /// `first_generation` (a cluster keeps them apart from other instances').
    pub fn new(settings: Settings, first_generation: u64) -> Self {
        Self {
            core: Arc::new(Core {
                settings,
                registry: Registry::new(first_generation, settings.forget_offline_after),
                pending: Pending::new(settings.max_pending),
                fence: Mutex::default(),
            }),
        }
    }

    pub(super) fn core(&self) -> &Core {
        &self.core
    }

    /// One event the log applied: completes the command waiting for it
    /// (once, whichever log), fails the waits of a connection that went
    /// offline, and follows runtimes that come and go on other instances.
    /// Embedded sinks call it under the registry's lock (status events are
    /// published there): for [`Origin::Here`] it touches only the waits.
    pub fn on_applied(&self, applied: &Applied<'_>) {
        let Some(runtime_id) = &applied.event.runtime_id else { return };
        let core = &self.core;
        if let Some(request_id) = applied.reply_to {
            core.pending.complete(runtime_id, request_id, applied.event.data());
        }
        let generation = applied.generation;
        match (&*applied.event.kind, applied.origin) {
            ("runtime_online", Origin::Instance { node, at }) => {
                core.registry.remote_online(runtime_id, node, generation, at);
            }
            ("runtime_offline", origin) => {
                if let Origin::Instance { node, at } = origin {
                    core.registry.remote_offline(runtime_id, node, generation, at);
                }
                core.pending.fail_connection(runtime_id, generation);
            }
            _ => {}
        }
        if let Origin::Instance { .. } = applied.origin
            && let Some(scope) =
                Scope::of_event(applied.event.agent_id.as_deref(), applied.event.conversation_id.as_deref())
        {
            core.registry.scopes(runtime_id).note(scope);
        }
    }

    /// Writes `frame` to the socket of `runtime_id`'s connection
    /// `generation`, served here; resolves once it is written. Nothing is
    /// written after `deadline`: the socket task drops a frame whose writer
    /// gave up ([`DispatchError::NotTaken`]).
    pub async fn write_local(
        &self,
        runtime_id: &str,
        generation: u64,
        frame: CommandFrame,
        deadline: Instant,
    ) -> Result<(), DispatchError> {
        let request_id = frame.request_id.clone();
        let Some(link) = self.core.registry.local_link(runtime_id, generation) else {
            return Err(DispatchError::NotSent(request_id));
        };
        let written = link.send(frame)?;
        match timeout_at(deadline, written).await {
            Ok(Ok(())) => Ok(()),
            // The socket task ended with the frame still queued.
            Ok(Err(_)) => Err(DispatchError::NotSent(request_id)),
            Err(_) => Err(DispatchError::NotTaken(request_id)),
        }
    }

    /// Follows a runtime another instance holds (read from the cluster's
    /// record when this instance starts).
    pub fn remote_online(&self, runtime_id: &str, node: &str, generation: u64, since: SystemTime) {
        self.core.registry.remote_online(runtime_id, node, generation, since);
    }

    /// One runtime as this instance's registry knows it.
    pub fn info(&self, runtime_id: &str) -> Option<RuntimeInfo> {
        self.core.registry.info(runtime_id)
    }

    /// Appends `runtime_online` again to `sink` for every local runtime:
    /// the shared log lost its data (and with it the record of who holds what).
    pub fn reannounce(&self, sink: &dyn EventSink) {
        for link in self.core.registry.local_links() {
            if let Some(online) = self.core.registry.online_event(&link) {
                sink.append(&link, status_draft(&link, "runtime_online", &online), None);
            }
        }
    }

    /// Closes every local runtime socket (1012, so the runtimes reconnect,
    /// elsewhere if they can): this instance cannot reach the cluster's engine.
    pub fn fence(&self) {
        let old = std::mem::take(&mut *self.core.fence.lock().unwrap_or_else(|p| p.into_inner()));
        old.cancel();
    }

    /// The token that closes a connection when the instance fences itself.
    pub(super) fn fence_token(&self) -> CancellationToken {
        self.core.fence.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The bridge's status event `kind` about `link`'s runtime.
pub(super) fn status_draft(link: &Link, kind: &str, body: &impl Serialize) -> Draft {
    Draft {
        kind: kind.into(),
        runtime_id: Some(link.runtime_id.clone()),
        agent_id: None,
        conversation_id: None,
        data: serde_json::to_string(body).expect("status events serialise"),
    }
}
