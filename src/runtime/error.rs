//! What can become of a command besides success, in one vocabulary for every
//! path it takes: written here, forwarded to the instance holding its
//! runtime, its reply or turn awaited. The HTTP API maps it to problems in
//! one place (`http::error`); a cluster's acks carry its write outcomes by
//! name ([`DispatchError::write_outcome`]).

use super::{PendingError, RouteError};
use crate::protocol::turn::TurnError;

/// The shared engine of a cluster cannot be reached; retry later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the cluster's engine is unavailable: {0}")]
pub struct Unavailable(pub String);

/// Why a command did not get what it waited for.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// No runtime to send to.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The reply could not be awaited.
    #[error(transparent)]
    Pending(#[from] PendingError),
    /// The turn could not be followed to its end.
    #[error(transparent)]
    Turn(#[from] TurnError),
    /// The cluster's engine cannot be reached (cluster mode).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The instance holding the runtime's socket did not take the command (cluster mode).
    #[error("the bridge instance {0:?} holding the runtime does not answer; retry")]
    Unreachable(String),
    /// The runtime's command queue (LETTA_BRIDGE_COMMAND_QUEUE) is full:
    /// the policy is to refuse, not to wait.
    #[error("the runtime's command queue is full")]
    Full,
    /// The runtime disconnected after the frame was written, before it was answered.
    #[error("the runtime disconnected before answering request {0:?}")]
    Gone(String),
    /// The runtime's connection ended (it went, or this instance is shutting
    /// down) before the frame was written: nothing was sent; retry.
    #[error("the runtime's connection ended before request {0:?} was sent; nothing was sent, retry")]
    NotSent(String),
    /// The socket did not take the frame before the deadline: it was not sent.
    #[error("the runtime's socket did not take request {0:?} in time")]
    NotTaken(String),
    /// The runtime did not answer before the deadline.
    #[error("the runtime did not answer request {0:?} in time")]
    NoReply(String),
}

/// The outcomes of writing a frame to a runtime's socket, by name: how a
/// cluster instance tells the sender what became of a forwarded command.
/// (`unsent` is newer than the others: an instance that does not know it
/// reads it as `late`, which is also a frame never written.)
pub const WRITE_OUTCOMES: [&str; 5] = ["written", "gone", "full", "late", "unsent"];

impl DispatchError {
    /// The name of a write's outcome ([`WRITE_OUTCOMES`]): `written`, or
    /// why the frame is not on the socket.
    pub fn write_outcome(result: &Result<(), DispatchError>) -> &'static str {
        match result {
            Ok(()) => "written",
            Err(Self::Full) => "full",
            Err(Self::NotTaken(_)) => "late",
            Err(Self::NotSent(_)) => "unsent",
            Err(_) => "gone",
        }
    }

    /// Why a command failed, in one word (a trace's `outcome`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Route(_) => "no_runtime",
            Self::Pending(_) => "pending_refused",
            Self::Turn(_) => "turn_failed",
            Self::Unavailable(_) => "unavailable",
            Self::Unreachable(_) => "unreachable",
            Self::Full => "full",
            Self::Gone(_) => "gone",
            Self::NotSent(_) => "unsent",
            Self::NotTaken(_) => "late",
            Self::NoReply(_) => "no_reply",
        }
    }

    /// A write's outcome from its name, for the command `request_id`; an
    /// unknown name reads as not written in time.
    pub fn from_write_outcome(name: &str, request_id: &str) -> Result<(), DispatchError> {
        match name {
            "written" => Ok(()),
            "full" => Err(Self::Full),
            "gone" => Err(Self::Gone(request_id.to_owned())),
            "unsent" => Err(Self::NotSent(request_id.to_owned())),
            _ => Err(Self::NotTaken(request_id.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_outcome_survives_its_name() {
        for name in WRITE_OUTCOMES {
            let outcome = DispatchError::from_write_outcome(name, "r1");
            assert_eq!(DispatchError::write_outcome(&outcome), name);
        }
    }

    #[test]
    fn a_write_outcome_read_back_names_the_senders_request() {
        let late = DispatchError::from_write_outcome("late", "r1").unwrap_err();
        assert!(matches!(&late, DispatchError::NotTaken(id) if id == "r1"), "{late:?}");
        let gone = DispatchError::from_write_outcome("gone", "r2").unwrap_err();
        assert!(matches!(&gone, DispatchError::Gone(id) if id == "r2"), "{gone:?}");
        assert!(matches!(DispatchError::from_write_outcome("full", "r3"), Err(DispatchError::Full)));
        let unsent = DispatchError::from_write_outcome("unsent", "r4").unwrap_err();
        assert!(matches!(&unsent, DispatchError::NotSent(id) if id == "r4"), "{unsent:?}");
    }
}
