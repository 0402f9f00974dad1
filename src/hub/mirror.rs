//! A hub that mirrors a shared log (several bridge instances): the log
//! assigns the seqs, and the hub stores them as given. The ring, resume,
//! `lagged` and `reset` then work as in a hub that assigns its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Draft, Event, Hub};

impl Hub {
    /// Stores the log's event `seq`, `age` old, and wakes subscribers. An
    /// event already held is ignored (`None`); after a gap (events the log
    /// trimmed before this mirror read them) the ring restarts at `seq`, and
    /// subscribers that had not read up to the gap get `lagged`.
    pub fn apply(&self, seq: u64, age: Duration, draft: Draft) -> Option<Arc<Event>> {
        let event = self.store(seq, age, draft);
        self.wake();
        event
    }

    /// [`Hub::apply`] without the wake-up, for a batch of the log: the
    /// mirror wakes subscribers once after it ([`Hub::wake`]), and they read
    /// the batch in one go instead of one event per wake-up.
    pub fn store(&self, seq: u64, age: Duration, draft: Draft) -> Option<Arc<Event>> {
        let now = Instant::now();
        let at = now.checked_sub(age).unwrap_or(now);
        let mut ring = self.inner.ring.write().unwrap_or_else(|p| p.into_inner());
        if seq <= ring.last_seq {
            return None;
        }
        if seq > ring.last_seq + 1 {
            ring.events.clear();
            ring.bytes = 0;
        }
        Some(ring.push(seq, draft, at, &self.inner.limits))
    }

    /// Wakes subscribers to read what was stored.
    pub fn wake(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The log lost its data and starts again under `epoch`: the ring is
    /// emptied, seqs restart at 1, and every subscriber gets `reset` with
    /// reason `other_epoch` before the new epoch's events.
    pub fn rebase(&self, epoch: &str) {
        {
            let mut ring = self.inner.ring.write().unwrap_or_else(|p| p.into_inner());
            if *ring.epoch == *epoch {
                return;
            }
            ring.previous_epoch = Some(std::mem::replace(&mut ring.epoch, Arc::from(epoch)));
            ring.era += 1;
            ring.events.clear();
            ring.bytes = 0;
            ring.last_seq = 0;
        }
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until the event `seq` of `epoch` is held (or was), at most
    /// `timeout`: a client may resume here from a cursor it got from an
    /// instance whose mirror is a little ahead of this one. False when it
    /// did not come (or the epoch is another).
    pub async fn caught_up(&self, epoch: &str, seq: u64, timeout: Duration) -> bool {
        let mut wake = self.inner.wake.subscribe();
        let reached = |hub: &Hub| {
            let ring = hub.read();
            *ring.epoch == *epoch && ring.last_seq >= seq
        };
        let wait = async {
            loop {
                wake.borrow_and_update();
                if reached(self) {
                    return;
                }
                if wake.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Gap, Limits, Next, Start};
    use super::*;

    fn hub() -> Hub {
        Hub::with_epoch("ep".into(), Limits { events: 10, bytes: usize::MAX, max_age: Duration::from_secs(3600) })
    }

    fn draft(i: u64) -> Draft {
        Draft {
            kind: "x".into(),
            runtime_id: None,
            agent_id: None,
            conversation_id: None,
            data: format!("{{\"i\":{i}}}"),
        }
    }

    #[test]
    fn a_mirror_keeps_the_logs_seqs_and_ignores_repeats() {
        let hub = hub();
        assert!(hub.apply(1, Duration::ZERO, draft(1)).is_some());
        assert!(hub.apply(2, Duration::ZERO, draft(2)).is_some());
        assert!(hub.apply(2, Duration::ZERO, draft(2)).is_none(), "already held");
        assert_eq!(hub.cursor(), "ep-2");
        let (mut sub, _) = hub.open(Start::After("ep-0"));
        let mut buf = Vec::new();
        assert_eq!(sub.try_read(&mut buf, 10), Some(Next::Events));
        assert_eq!(buf.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn a_gap_in_the_log_is_lagged_for_subscribers_behind_it() {
        let hub = hub();
        hub.apply(1, Duration::ZERO, draft(1));
        let (mut sub, _) = hub.open(Start::After("ep-0"));
        hub.apply(5, Duration::ZERO, draft(5));
        let mut buf = Vec::new();
        let lagged = Gap::Lagged { missed: 4, resume_from: "ep-4".into() };
        assert_eq!(sub.try_read(&mut buf, 10), Some(Next::Gap(lagged)));
        assert_eq!(sub.try_read(&mut buf, 10), Some(Next::Events));
        assert_eq!(buf[0].seq, 5);
    }

    #[test]
    fn a_rebase_resets_every_subscriber_then_delivers_the_new_epoch() {
        let hub = hub();
        hub.apply(1, Duration::ZERO, draft(1));
        let (mut sub, _) = hub.open(Start::Live);
        hub.rebase("fresh");
        hub.apply(1, Duration::ZERO, draft(1));
        let mut buf = Vec::new();
        let rebased = Gap::Rebased { previous: "ep-1".into(), resume_from: "fresh-0".into() };
        assert_eq!(sub.try_read(&mut buf, 10), Some(Next::Gap(rebased)));
        assert_eq!(sub.try_read(&mut buf, 10), Some(Next::Events));
        assert_eq!(String::from_utf8_lossy(&buf[0].sse()[..]).lines().next(), Some("id: fresh-1"));
    }

    #[tokio::test]
    async fn a_cursor_ahead_of_the_mirror_is_waited_for() {
        let hub = hub();
        assert!(!hub.caught_up("ep", 1, Duration::from_millis(10)).await);
        let later = hub.clone();
        let apply = tokio::spawn(async move {
            tokio::task::yield_now().await;
            later.apply(1, Duration::ZERO, draft(1));
        });
        assert!(hub.caught_up("ep", 1, Duration::from_secs(5)).await);
        apply.await.unwrap();
        assert!(!hub.caught_up("other", 1, Duration::from_millis(10)).await);
    }
}
