//! Where the events of runtime sockets go: the seam between a socket task
//! and the event log. Embedded, the log is the hub itself and each event is
//! applied ([`Handle::on_applied`]) the moment it is published; a cluster
//! appends to a shared log instead and applies each event as its mirror
//! reads it back. Either way a reply completes its waiter in one place.

use std::pin::Pin;

use super::{Applied, Handle, Link, Origin};
use crate::hub::{Draft, Hub};

/// Takes the events a runtime sends, in order, and the bridge's status
/// events about runtimes.
pub trait EventSink: Send + Sync + 'static {
    /// Appends one event of `link`'s connection (a frame, or the bridge's
    /// `runtime_online` / `runtime_offline` about it); `reply_to` is the
    /// `request_id` it answers, when it is a reply frame.
    fn append(&self, link: &Link, draft: Draft, reply_to: Option<String>);

    /// `Some` while the sink is full: resolves when it has room again. The
    /// socket task then stops reading the runtime meanwhile (TCP pushes back
    /// on the runtime) instead of queueing without bound. The hub never fills.
    fn backpressure(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>> {
        None
    }
}

/// The embedded log: publish to the hub, then apply the event.
pub struct HubSink {
    hub: Hub,
    runtimes: Handle,
}

impl HubSink {
    /// A sink publishing to `hub` and applying each event to `runtimes`.
    pub fn new(hub: Hub, runtimes: Handle) -> Self {
        Self { hub, runtimes }
    }
}

impl EventSink for HubSink {
    fn append(&self, link: &Link, draft: Draft, reply_to: Option<String>) {
        let event = self.hub.publish(draft);
        let applied =
            Applied { event: &event, generation: link.generation, reply_to: reply_to.as_deref(), origin: Origin::Here };
        self.runtimes.on_applied(&applied);
    }
}
