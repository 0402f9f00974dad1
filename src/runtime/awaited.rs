//! The commands a runtime's socket wrote that the runtime has not answered
//! yet, by `request_id`. A socket closing for a shutdown first waits a
//! little for these answers ([`DRAIN_ANSWERS`]), so that a command written
//! just before a drain gets its reply, not a `502` that its client could
//! neither trust nor retry (an `Idempotency-Key` remembers a `502`).
//!
//! Bounded: past [`MAX_AWAITED`] unanswered ids, further ones are not
//! tracked (a drain then does not wait for them); the runtime's answers are
//! what empties it.

use std::collections::HashSet;
use std::time::Duration;

/// Most unanswered commands tracked per connection.
pub(super) const MAX_AWAITED: usize = 1024;

/// Longest a shutting-down socket waits for the answers of the commands it
/// wrote. The runtime acknowledges `input` in milliseconds; this stays well
/// inside LETTA_BRIDGE_SHUTDOWN_GRACE's default of 10 s.
pub(super) const DRAIN_ANSWERS: Duration = Duration::from_secs(2);

/// The `request_id`s written and not yet answered.
#[derive(Debug, Default)]
pub(super) struct Awaited {
    ids: HashSet<String>,
}

impl Awaited {
    /// A command was written; `answered_by` is its id when the runtime answers it.
    pub(super) fn written(&mut self, answered_by: Option<String>) {
        if let Some(id) = answered_by
            && self.ids.len() < MAX_AWAITED
        {
            self.ids.insert(id);
        }
    }

    /// The runtime answered `request_id`.
    pub(super) fn answered(&mut self, request_id: &str) {
        self.ids.remove(request_id);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_clears_its_command_and_unanswered_kinds_are_never_awaited() {
        let mut awaited = Awaited::default();
        awaited.written(Some("r1".into()));
        awaited.written(None);
        assert_eq!(awaited.len(), 1);
        awaited.answered("r2");
        assert!(!awaited.is_empty());
        awaited.answered("r1");
        assert!(awaited.is_empty());
    }

    #[test]
    fn past_the_bound_further_commands_are_not_tracked() {
        let mut awaited = Awaited::default();
        for i in 0..MAX_AWAITED + 10 {
            awaited.written(Some(format!("r{i}")));
        }
        assert_eq!(awaited.len(), MAX_AWAITED);
    }
}
