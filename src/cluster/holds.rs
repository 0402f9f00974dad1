//! The ticket holds of this instance's streams: a stream opened with a
//! ticket holds it as `<node>:<n>` and renews the hold every third of the
//! reconnect grace ([`keep_holding`]). Opening the ticket again takes it
//! over ([`takeover`]): the earlier stream ends, on this instance at once
//! ([`TicketHolds::end`]) or on its own instance, told on its channel.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use crate::store::RECONNECT_GRACE;

/// This instance's holds, by holder id. Short map operations under the
/// lock, never held across `.await`.
#[derive(Default)]
pub(super) struct TicketHolds {
    holds: Mutex<HashMap<String, CancellationToken>>,
}

/// Where the earlier holder of a ticket opened again streams.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Takeover<'a> {
    /// On this instance.
    Here,
    /// On the instance `0`.
    Instance(&'a str),
    /// Nowhere this instance can tell (not a holder id).
    Unknown,
}

/// Where `holder` (`<node>:<n>`) streams, seen from instance `me`.
pub(super) fn takeover<'a>(holder: &'a str, me: &str) -> Takeover<'a> {
    match holder.rsplit_once(':') {
        Some((node, _)) if node == me => Takeover::Here,
        Some((node, _)) if !node.is_empty() => Takeover::Instance(node),
        _ => Takeover::Unknown,
    }
}

impl TicketHolds {
    /// Records `holder`'s hold; `taken` ends its stream.
    pub(super) fn hold(&self, holder: &str, taken: CancellationToken) {
        self.lock().insert(holder.to_owned(), taken);
    }

    /// `holder`'s stream ended by itself.
    pub(super) fn release(&self, holder: &str) {
        self.lock().remove(holder);
    }

    /// Another stream took `holder`'s ticket: its stream ends. False when
    /// this instance holds nothing under that id (any more).
    pub(super) fn end(&self, holder: &str) -> bool {
        let taken = self.lock().remove(holder);
        taken.inspect(CancellationToken::cancel).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a hold's renewals ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HoldEnd {
    /// Its stream ended: the ticket's grace starts.
    Released,
    /// Another stream took the ticket (`taken` is cancelled).
    Taken,
    /// The instance is leaving the cluster.
    Stopped,
}

/// Renews a hold every third of [`RECONNECT_GRACE`] with `keep` (false:
/// another stream holds the ticket now) until it is released, taken over
/// or the instance stops. A renewal the engine did not answer is tried
/// again at the next third: the hold lasts a whole grace.
pub(super) async fn keep_holding<F, Fut, E>(
    mut keep: F,
    taken: &CancellationToken,
    released: &CancellationToken,
    stop: &CancellationToken,
) -> HoldEnd
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    loop {
        tokio::select! {
            () = released.cancelled() => return HoldEnd::Released,
            () = taken.cancelled() => return HoldEnd::Taken,
            () = stop.cancelled() => return HoldEnd::Stopped,
            () = tokio::time::sleep(RECONNECT_GRACE / 3) => {}
        }
        if let Ok(false) = keep().await {
            taken.cancel();
            return HoldEnd::Taken;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_ticket_opened_again_ends_the_earlier_stream_here_or_tells_its_instance() {
        assert_eq!(takeover("n-a:3", "n-a"), Takeover::Here);
        assert_eq!(takeover("n-b:3", "n-a"), Takeover::Instance("n-b"));
        assert_eq!(takeover("-", "n-a"), Takeover::Unknown, "an unused ticket has no holder");
        assert_eq!(takeover(":3", "n-a"), Takeover::Unknown);
    }

    #[test]
    fn ending_a_hold_ends_its_stream_once_and_a_released_hold_is_not_ended() {
        let holds = TicketHolds::default();
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        holds.hold("n-a:1", first.clone());
        holds.hold("n-a:2", second.clone());
        assert!(holds.end("n-a:1"));
        assert!(first.is_cancelled());
        assert!(!holds.end("n-a:1"), "already ended");
        holds.release("n-a:2");
        assert!(!holds.end("n-a:2"));
        assert!(!second.is_cancelled(), "a stream that ended by itself is not taken over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_renewed_every_third_of_the_grace_until_another_stream_takes_the_ticket() {
        let renewals = AtomicUsize::new(0);
        let (taken, released, stop) = (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
        let started = tokio::time::Instant::now();
        let keep = || async {
            let n = renewals.fetch_add(1, Ordering::Relaxed) + 1;
            Ok::<_, ()>(n < 3)
        };
        assert_eq!(keep_holding(keep, &taken, &released, &stop).await, HoldEnd::Taken);
        assert_eq!(renewals.load(Ordering::Relaxed), 3);
        assert_eq!(started.elapsed(), RECONNECT_GRACE, "three renewals, a third of the grace apart");
        assert!(taken.is_cancelled(), "the stream holding it ends");
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_the_engine_did_not_answer_keeps_the_hold_until_it_is_released() {
        let (taken, released, stop) = (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
        let release = released.clone();
        let renewals = AtomicUsize::new(0);
        let keep = || {
            if renewals.fetch_add(1, Ordering::Relaxed) == 4 {
                release.cancel();
            }
            async { Err::<bool, _>("the engine does not answer") }
        };
        assert_eq!(keep_holding(keep, &taken, &released, &stop).await, HoldEnd::Released);
        assert_eq!(renewals.load(Ordering::Relaxed), 5);
        assert!(!taken.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_stops_renewing_when_the_instance_leaves() {
        let (taken, released, stop) = (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
        stop.cancel();
        let keep = || async { Ok::<_, ()>(true) };
        assert_eq!(keep_holding(keep, &taken, &released, &stop).await, HoldEnd::Stopped);
    }
}
