//! The service's client sockets: what every socket task needs (the
//! runtimes, the event log, the shutdown signal) and the tracker shutdown
//! waits on, so that each socket sends its close frame (1001) before the
//! service stops.

use std::future::Future;
use std::sync::Arc;

use axum::extract::ws::WebSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ClientSocket;
use super::socket::Closing;
use crate::hub::Hub;
use crate::quota::Quotas;
use crate::runtime::Runtimes;

/// Cheap to clone; every clone serves and tracks the same sockets.
#[derive(Clone)]
pub struct Sockets {
    /// The runtimes commands go to.
    pub(super) runtimes: Runtimes,
    /// The event log.
    pub(super) hub: Hub,
    /// Cancelled at shutdown (after the runtimes' last events): close 1001.
    pub(super) shutdown: CancellationToken,
    /// The per-credential limits each command frame passes.
    pub(super) quotas: Arc<Quotas>,
    tasks: TaskTracker,
}

impl Sockets {
    /// Sockets that drive `runtimes`, read `hub`, count each command
    /// against its credential's rate in `quotas`, and close when `shutdown`
    /// is cancelled.
    pub fn new(runtimes: Runtimes, hub: Hub, quotas: Arc<Quotas>, shutdown: CancellationToken) -> Self {
        Self { runtimes, hub, shutdown, quotas, tasks: TaskTracker::new() }
    }

    /// Serves `ws` as `socket` until the client leaves, the bridge stops
    /// (close 1001), or `ends` resolves ([`Closing`] says how it closes).
    pub async fn serve(&self, ws: WebSocket, socket: ClientSocket, ends: impl Future<Output = Closing>) {
        self.tasks.track_future(socket.run(ws, self, ends)).await;
    }

    /// Lets [`Self::wait`] end once the sockets served so far have ended
    /// (at shutdown, after the shutdown token is cancelled).
    pub fn close(&self) {
        self.tasks.close();
    }

    /// Waits until every socket has sent its close frame and ended.
    pub async fn wait(&self) {
        self.tasks.wait().await;
    }
}
