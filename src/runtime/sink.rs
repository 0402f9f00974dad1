//! Where the events of runtime sockets go: the seam between a socket task
//! and the event log. Embedded, the log is the hub itself and a reply
//! completes its waiter the moment it is published; a cluster appends to a
//! shared log instead and completes waiters as its mirror reads them back.

use std::pin::Pin;

use super::{Link, Pending};
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

/// The embedded log: publish to the hub, then hand a reply to its waiter.
pub struct HubSink {
    hub: Hub,
    pending: Pending,
}

impl HubSink {
    /// A sink publishing to `hub` and completing `pending`'s waits.
    pub fn new(hub: Hub, pending: Pending) -> Self {
        Self { hub, pending }
    }
}

impl EventSink for HubSink {
    fn append(&self, link: &Link, draft: Draft, reply_to: Option<String>) {
        let event = self.hub.publish(draft);
        if let Some(request_id) = reply_to {
            self.pending.complete(&link.runtime_id, &request_id, event.data());
        }
    }
}
