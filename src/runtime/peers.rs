//! The seam to the other bridge instances of a cluster: what the runtime
//! side needs from them besides the event log ([`super::EventSink`]).
//! Embedded, there are none; `src/cluster` implements it on Redis.

use std::pin::Pin;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{CommandFrame, DispatchError, Remote, RuntimeInfo, RuntimePage, Unavailable};

/// A call to the other instances in flight.
pub type PeerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Unavailable>> + Send + 'a>>;

/// A command forwarded to the instance holding its runtime, in flight.
pub type ForwardFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DispatchError>> + Send + 'a>>;

/// A registration as every instance can read it: registered on one, the
/// runtime may open its socket on another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    /// The runtime's device id.
    pub device_id: String,
    /// Its `connectionName`.
    pub connection_name: Option<String>,
    /// `lettaCodeVersion` from the metadata.
    pub version: Option<String>,
    /// `os` from the metadata.
    pub os: Option<String>,
    /// `nodeVersion` from the metadata.
    pub node_version: Option<String>,
}

/// The other bridge instances sharing the runtimes.
pub trait Peers: Send + Sync + 'static {
    /// Fails while the shared engine cannot be reached: commands are then
    /// refused at once rather than sent into a log that cannot answer.
    fn check(&self) -> Result<(), Unavailable>;

    /// Stores `registration` for every instance; returns the device's
    /// connection id (stable for the device across the cluster).
    fn register<'a>(&'a self, registration: &'a Registration) -> PeerFuture<'a, String>;

    /// The registration behind a connection id, made on any instance.
    fn registration<'a>(&'a self, connection_id: &'a str) -> PeerFuture<'a, Option<Registration>>;

    /// Writes `frame` to the socket of a runtime that `to.node` holds (its
    /// [`super::Handle::write_local`]); resolves once written there.
    /// Nothing is written after `deadline`.
    fn forward<'a>(&'a self, to: &'a Remote, frame: CommandFrame, deadline: Instant) -> ForwardFuture<'a>;

    /// Every runtime of the cluster, as the shared engine records them.
    fn list(&self) -> PeerFuture<'_, Vec<RuntimeInfo>>;

    /// At most `limit` runtimes of the cluster with ids after `after`,
    /// sorted by id (reading only those from the shared engine).
    fn page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> PeerFuture<'a, RuntimePage>;

    /// A local runtime answered a ping at `at`.
    fn pong(&self, runtime_id: &str, generation: u64, at: SystemTime);
}
