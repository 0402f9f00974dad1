//! The runtime side: which runtimes exist (keyed by device), the one task
//! that owns each runtime's socket, and commands end to end — resolved,
//! written, and their replies or whole turns awaited.
//!
//! Every door calls the same core: [`Runtimes::dispatch`] (a checked
//! command, waited for as asked), [`Runtimes::resolve`] (where a runtime's
//! socket is), [`Runtimes::write_local`] (a frame onto a socket served
//! here) and [`Runtimes::serve`] (a runtime's upgraded socket). Frames from
//! the runtime go to the [`EventSink`]; each event the log then holds is
//! applied in one place, [`Handle::on_applied`], embedded or in a cluster.

mod accept;
mod awaited;
pub mod closing;
mod connection;
mod dispatch;
mod error;
mod handle;
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

pub use dispatch::{Accepted, Dispatched, Order, WRITE_WAIT, Wait};
pub use error::{DispatchError, Unavailable, WRITE_OUTCOMES};
pub use handle::{Applied, Handle, Origin};
pub use link::{CommandFrame, Link, Outgoing};
pub use peers::{ForwardFuture, PeerFuture, Peers, Registration};
pub use pending::{Outcome, Pending, PendingError, Waiting};
pub use registry::{MAX_OFFLINE_DEVICES, RegistryFull, rfc3339, unix_millis_now};
pub use runtimes::{RegisterError, Runtimes};
pub use scopes::MAX_SCOPES;
pub use sink::{EventSink, HubSink};
pub use target::{KnownScope, Remote, RouteError, RuntimeInfo, RuntimePage, Target};

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
