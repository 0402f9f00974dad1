//! The epoch rules: what a mirror does when the shared log is not the one
//! it has been reading (a restarted or failed-over engine).
//!
//! - The log's epoch changed (its data was lost): the hub rebases, every
//!   subscriber gets `reset` (`other_epoch`), the mirror reads the new log
//!   from its start, and this instance announces its runtimes again.
//! - Same epoch but fewer events than the mirror has read (the engine came
//!   back with an older copy): the log starts again under a new epoch
//!   rather than give old ids to new events, then as above.
//!
//! The mirror checks on every (re)connection and at least every second
//! ([`judge`] decides; `mirror.rs` acts).

/// A fresh epoch: 10 hex characters, like the embedded hub's.
pub(super) fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// What the mirror does after comparing the log with itself.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The same log: keep reading.
    Follow,
    /// Another log (its data was lost, or this is the first look): rebase
    /// the hub on its epoch and read it from its start.
    Rebase,
    /// The same epoch with fewer events than the mirror read: start the
    /// log again under a new epoch.
    Bump,
}

/// Compares the log (`epoch`, `seq` events) with the mirror's epoch and
/// the seq it read last.
pub(super) fn judge(mirror_epoch: &str, last: u64, epoch: &str, seq: u64) -> Verdict {
    if mirror_epoch != epoch {
        Verdict::Rebase
    } else if seq < last {
        Verdict::Bump
    } else {
        Verdict::Follow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_log_at_or_past_the_mirror_is_followed() {
        assert_eq!(judge("ep1", 10, "ep1", 10), Verdict::Follow);
        assert_eq!(judge("ep1", 10, "ep1", 12), Verdict::Follow, "events not mirrored yet");
        assert_eq!(judge("ep1", 0, "ep1", 0), Verdict::Follow);
    }

    #[test]
    fn a_log_under_another_epoch_is_read_again_from_its_start() {
        assert_eq!(judge("ep1", 10, "ep2", 3), Verdict::Rebase, "the engine lost its data");
        assert_eq!(judge("ep1", 10, "ep2", 50), Verdict::Rebase, "however long the new log is");
        assert_eq!(judge("local", 0, "ep1", 7), Verdict::Rebase, "the first look at the log");
    }

    #[test]
    fn a_log_behind_the_mirror_in_the_same_epoch_starts_a_new_epoch_rather_than_reuse_ids() {
        assert_eq!(judge("ep1", 10, "ep1", 9), Verdict::Bump);
        assert_eq!(judge("ep1", 10, "ep1", 0), Verdict::Bump, "an emptied log kept its meta");
    }

    #[test]
    fn new_epochs_look_like_the_embedded_hubs_and_differ() {
        let (a, b) = (new_epoch(), new_epoch());
        assert_eq!(a.len(), 10);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
