//! The handle to one connection of one runtime: a bounded queue into the
//! task that owns its socket. Cheap to clone; nothing else reaches the socket.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::protocol::Scope;

/// A frame queued for a runtime's socket; `written` fires once it is on the wire.
pub struct Outgoing {
    /// The frame, as sent.
    pub text: String,
    /// The command's runtime scope, remembered for re-sync after a reconnect.
    pub scope: Option<Scope>,
    /// Fired once the frame is written; a closed receiver means its request
    /// gave up, and the frame is dropped unsent.
    pub written: oneshot::Sender<()>,
}

/// A cheap handle to one connection of one runtime.
#[derive(Clone)]
pub struct Link {
    /// The runtime (its device id).
    pub runtime_id: Arc<str>,
    /// The connection's generation: a newer connection of the device has a higher one.
    pub generation: u64,
    tx: mpsc::Sender<Outgoing>,
}

/// Why a frame could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The queue (LETTA_BRIDGE_COMMAND_QUEUE) is full: the policy is to refuse, not to wait.
    #[error("the runtime's command queue is full")]
    Full,
    /// The socket task has ended.
    #[error("the runtime disconnected")]
    Gone,
}

impl Link {
    /// A link and the receiving end its socket task reads, with room for `queue` frames.
    pub(super) fn new(runtime_id: Arc<str>, generation: u64, queue: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(queue);
        (Self { runtime_id, generation, tx }, rx)
    }

    /// Queues `text` for the socket; resolves once it is written.
    pub fn send(&self, text: String, scope: Option<Scope>) -> Result<oneshot::Receiver<()>, SendError> {
        let (written, rx) = oneshot::channel();
        self.tx.try_send(Outgoing { text, scope, written }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })?;
        Ok(rx)
    }
}
