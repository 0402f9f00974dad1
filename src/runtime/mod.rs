//! The runtime side: which runtimes exist (keyed by device), the one task
//! that owns each runtime's socket, and commands end to end — routed,
//! written, and their replies or whole turns awaited.
//!
//! HTTP handlers hand a checked command to [`Runtimes::dispatch`] and a
//! runtime's upgraded socket to [`Runtimes::serve`]; frames from the
//! runtime go to the [`EventSink`] (the hub, embedded) and complete the
//! commands waiting for them.

mod accept;
pub mod closing;
mod connection;
mod dispatch;
mod link;
mod peers;
mod pending;
mod registry;
mod runtimes;
mod scopes;
mod sink;
mod target;
mod turn;

use std::time::Duration;

pub use dispatch::{Accepted, DispatchError, Dispatched, Order, WRITE_WAIT, Wait};
pub use link::{Link, Outgoing, SendError};
pub use peers::{PeerError, PeerFuture, Peers, Registration};
pub use pending::{Outcome, Pending, PendingError, Waiting};
pub use registry::{MAX_OFFLINE_DEVICES, RegistryFull, rfc3339, unix_millis_now};
pub use runtimes::{Logged, RegisterError, Runtimes};
pub use scopes::MAX_SCOPES;
pub use sink::{EventSink, HubSink};
pub use target::{Remote, RouteError, RuntimeInfo, RuntimePage, Target};

/// Settings of runtime sockets and the commands sent to them.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Interval between WebSocket ping control frames to each runtime.
    pub ping_interval: Duration,
    /// Pings left unanswered in a row before a runtime counts as gone.
    pub max_missed_pongs: u32,
    /// Frames queued per runtime socket before new ones are refused.
    pub command_queue: usize,
    /// Commands awaiting replies at once, over all runtimes.
    pub max_pending: usize,
    /// A runtime offline (or registered and never connected) this long is
    /// forgotten, with its connection id.
    pub forget_offline_after: Duration,
}
