//! The handle to one connection of one runtime: a bounded queue into the
//! task that owns its socket. Cheap to clone; nothing else reaches the socket.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::DispatchError;
use crate::protocol::commands::is_answered;
use crate::protocol::{Command, Scope};

/// A command as it goes to a runtime's socket, here or on the instance
/// holding it: its text, its scope and its `request_id`.
#[derive(Debug, Clone)]
pub struct CommandFrame {
    /// The command's `request_id` (for what is said when it fails).
    pub request_id: String,
    /// The frame, as sent.
    pub text: String,
    /// The command's runtime scope, remembered for re-sync after a reconnect.
    pub scope: Option<Scope>,
    /// The runtime answers it by its `request_id` ([`is_answered`]): a
    /// shutting-down socket waits for that answer before it closes.
    pub answered: bool,
}

impl CommandFrame {
    /// `command`, ready to be written.
    pub fn of(command: &Command) -> Self {
        Self {
            request_id: command.request_id().to_owned(),
            text: command.to_text(),
            scope: command.scope(),
            answered: is_answered(command.kind()),
        }
    }
}

/// A frame queued for a runtime's socket; `written` fires once it is on the wire.
pub struct Outgoing {
    /// The frame, as sent.
    pub text: String,
    /// The command's runtime scope, remembered for re-sync after a reconnect.
    pub scope: Option<Scope>,
    /// Its `request_id` when the runtime answers it by that id.
    pub answered_by: Option<String>,
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

impl Link {
    /// A link and the receiving end its socket task reads, with room for `queue` frames.
    pub(super) fn new(runtime_id: Arc<str>, generation: u64, queue: usize) -> (Self, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(queue);
        (Self { runtime_id, generation, tx }, rx)
    }

    /// Queues `frame` for the socket without waiting; the receiver resolves
    /// once it is written. A full queue refuses ([`DispatchError::Full`]).
    pub(super) fn send(&self, frame: CommandFrame) -> Result<oneshot::Receiver<()>, DispatchError> {
        let (written, rx) = oneshot::channel();
        let CommandFrame { request_id, text, scope, answered } = frame;
        let answered_by = answered.then(|| request_id.clone());
        self.tx.try_send(Outgoing { text, scope, answered_by, written }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DispatchError::Full,
            mpsc::error::TrySendError::Closed(_) => DispatchError::NotSent(request_id),
        })?;
        Ok(rx)
    }
}
