//! The cluster's engine health, as every call sees it: unavailable from
//! the first call that cannot reach Redis or whose write Redis refuses
//! (`READONLY`: a replica, e.g. a primary demoted by a failover;
//! `NOREPLICAS`: too few replicas for `min-replicas-to-write`) until a call
//! answers again. After a refused write only a write counts as an answer:
//! reads still work on a replica. `/readyz`, `/status` and the commands'
//! `503` read it ([`super::engine::Engine::healthy`]); fencing reads how
//! long it has failed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::RedisError;
use tokio::time::Instant;

/// Whether the last engine calls succeeded, and since when they fail.
pub(super) struct Health {
    ok: AtomicBool,
    /// A write was refused, and none succeeded since.
    refusing: AtomicBool,
    /// When the current run of failures began (tokio's clock).
    failing_since: Mutex<Option<Instant>>,
}

impl Default for Health {
    fn default() -> Self {
        Self { ok: AtomicBool::new(true), refusing: AtomicBool::new(false), failing_since: Mutex::new(None) }
    }
}

impl Health {
    /// A call succeeded (`wrote`: a write): a run of failures ends, unless
    /// writes are refused and this was no write.
    pub(super) fn answered(&self, wrote: bool) {
        if wrote {
            self.refusing.store(false, Ordering::Relaxed);
        } else if self.refusing.load(Ordering::Relaxed) {
            return;
        }
        if !self.ok.swap(true, Ordering::Relaxed) {
            *self.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
            tracing::info!("the cluster's engine answers again");
        }
    }

    /// A call failed; true when it starts a run of failures.
    pub(super) fn failed(&self) -> bool {
        let first = self.ok.swap(false, Ordering::Relaxed);
        if first {
            *self.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        first
    }

    /// A write was refused: a failure that only a write ends.
    pub(super) fn refuse(&self) {
        self.refusing.store(true, Ordering::Relaxed);
    }

    /// True while the last calls answered.
    pub(super) fn ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    /// How long the current run of failures has lasted.
    pub(super) fn failing_for(&self) -> Option<Duration> {
        self.failing_since.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.elapsed())
    }
}

/// True for errors that mean the engine cannot be reached or cannot serve
/// yet (as opposed to an answer that is an error).
pub(super) fn is_engine_failure(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.code(), Some("LOADING" | "MASTERDOWN"))
}

/// True for a write Redis refused: this node is a replica (`READONLY`; a
/// blocked read is `UNBLOCKED` when its node turns replica), or too few
/// replicas are in sync (`NOREPLICAS`, `min-replicas-to-write`).
pub(super) fn refuses_writes(e: &RedisError) -> bool {
    matches!(e.code(), Some("READONLY" | "NOREPLICAS" | "UNBLOCKED"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_run_of_failures_is_timed_from_its_first_failure_until_an_answer() {
        let health = Health::default();
        assert_eq!(health.failing_for(), None);
        assert!(health.failed(), "the first failure starts the run");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!health.failed(), "a later failure continues it");
        assert_eq!(health.failing_for(), Some(Duration::from_secs(3)));
        health.answered(false);
        assert_eq!(health.failing_for(), None);
        assert!(health.ok.load(Ordering::Relaxed));
    }

    #[test]
    fn a_refused_write_is_the_engine_unavailable_until_a_write_answers() {
        let health = Health::default();
        health.refuse();
        assert!(health.failed());
        health.answered(false);
        assert!(!health.ok.load(Ordering::Relaxed), "a read answers on a replica too");
        assert!(health.failing_for().is_some(), "the run of failures goes on (fencing counts it)");
        health.answered(true);
        assert!(health.ok.load(Ordering::Relaxed));
    }

    #[test]
    fn readonly_and_noreplicas_are_refused_writes_and_other_answers_are_not() {
        let error = |line: &str| {
            let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
            value.extract_error().unwrap_err()
        };
        assert!(refuses_writes(&error("READONLY You can't write against a read only replica.")));
        assert!(refuses_writes(&error("NOREPLICAS Not enough good replicas to write.")));
        assert!(refuses_writes(&error("UNBLOCKED force unblock from blocking operation, instance state changed")));
        assert!(!refuses_writes(&error("ERR unknown mode")));
        assert!(is_engine_failure(&error("LOADING Redis is loading the dataset in memory")));
        assert!(!is_engine_failure(&error("READONLY You can't write against a read only replica.")));
    }

    #[test]
    fn a_refused_connection_is_the_engine_away_and_a_script_error_is_not() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_engine_failure(&refused));
        let answer = RedisError::from((redis::ErrorKind::Client, "script", "unknown mode".to_owned()));
        assert!(!is_engine_failure(&answer));
    }
}
