//! The runtime side: which runtimes exist (keyed by device), the one task that
//! owns each runtime's socket, and replies awaited by `request_id`.
//!
//! HTTP handlers reach a runtime through a [`Link`] (a bounded sender to its
//! socket task); frames from the runtime go to the hub and to waiting requests.

mod connection;
mod pending;
mod registry;
mod scopes;

pub use connection::{Connection, LinkSettings};
pub use pending::{Outcome, Pending, PendingError, Waiting};
pub use registry::{Connected, Link, Outgoing, RouteError, RuntimeInfo, Runtimes, SendError};
pub use scopes::{MAX_SCOPES, Scope, ScopeCache, SharedScopes};
