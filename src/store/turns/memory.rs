//! Turns in this process's memory (see [`MemoryTurns`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Listed, MAX_TURNS, Position, TURN_RETENTION, TurnRecord, TurnStore};
use crate::store::StoreFuture;

/// Turns in memory, within the retention of the module doc: pruned on
/// every call (by count, then age), so memory holds at most
/// [`MAX_TURNS`] finished turns and the running ones. Time is tokio's, so
/// tests can pause it.
pub struct MemoryTurns {
    /// This store's epoch: a fresh one each start.
    epoch: String,
    max: usize,
    retention: Duration,
    /// Short map operations only; never held across `.await`.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The last position given.
    seq: u64,
    records: HashMap<String, Kept>,
    /// Finished turns by position, the earliest first, with when they finished.
    finished: VecDeque<(u64, String, Instant)>,
}

struct Kept {
    record: TurnRecord,
    /// Its position once finished; 0 while running.
    seq: u64,
    /// When a running record is forgotten.
    expires: Instant,
}

impl Default for MemoryTurns {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTurns {
    /// An empty store with the retention of the module doc.
    pub fn new() -> Self {
        Self::with_limits(MAX_TURNS, TURN_RETENTION)
    }

    /// An empty store keeping at most `max` finished turns for `retention`.
    pub fn with_limits(max: usize, retention: Duration) -> Self {
        let epoch = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Self { epoch, max, retention, inner: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.prune(self.max, self.retention, Instant::now());
        inner
    }

    fn list_now(&self, principal: Option<&str>, after: Option<&Position>, limit: usize) -> Listed {
        let inner = self.lock();
        let ours = |id: &String| {
            inner.records.get(id).filter(|k| principal.is_none_or(|p| k.record.principal == p)).map(|k| (k.seq, k))
        };
        let mut next = inner.seq;
        let turns: Vec<&Kept> = match after {
            None => inner.finished.iter().rev().filter_map(|(_, id, _)| ours(id)).take(limit).map(|(_, k)| k).collect(),
            Some(after) => {
                let from = if after.epoch == self.epoch { after.seq } else { 0 };
                next = next.max(from);
                let page: Vec<(u64, &Kept)> = inner
                    .finished
                    .iter()
                    .filter(|(seq, _, _)| *seq > from)
                    .filter_map(|(_, id, _)| ours(id))
                    .take(limit)
                    .collect();
                if page.len() == limit
                    && let Some((seq, _)) = page.last()
                {
                    next = *seq;
                }
                page.into_iter().rev().map(|(_, k)| k).collect()
            }
        };
        let turns = turns.into_iter().map(|k| k.record.clone()).collect();
        Listed { turns, next: Position { epoch: self.epoch.clone(), seq: next } }
    }
}

impl Inner {
    /// Drops the finished turns beyond `max` or older than `retention`, the
    /// earliest first, and running ones past their time.
    fn prune(&mut self, max: usize, retention: Duration, now: Instant) {
        while let Some((seq, id, at)) = self.finished.front() {
            if self.finished.len() <= max && *at + retention > now {
                break;
            }
            if self.records.get(id).is_some_and(|k| k.seq == *seq) {
                self.records.remove(id);
            }
            self.finished.pop_front();
        }
        // Running records end when their follower records the end; this
        // only forgets those whose follower stopped (checked when there
        // are more records than finished ones can explain).
        if self.records.len() > 2 * max.max(1) + self.finished.len() {
            self.records.retain(|_, k| k.seq != 0 || k.expires > now);
        }
    }
}

impl TurnStore for MemoryTurns {
    fn start<'a>(&'a self, record: &'a TurnRecord, keep: Duration) -> StoreFuture<'a, ()> {
        let mut inner = self.lock();
        let expires = Instant::now() + keep;
        inner.records.entry(record.id.clone()).or_insert_with(|| Kept { record: record.clone(), seq: 0, expires });
        Box::pin(std::future::ready(Ok(())))
    }

    fn finish<'a>(&'a self, record: &'a TurnRecord) -> StoreFuture<'a, ()> {
        let mut inner = self.lock();
        inner.seq += 1;
        let (seq, now) = (inner.seq, Instant::now());
        inner.records.insert(record.id.clone(), Kept { record: record.clone(), seq, expires: now });
        inner.finished.push_back((seq, record.id.clone(), now));
        inner.prune(self.max, self.retention, now);
        Box::pin(std::future::ready(Ok(())))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TurnRecord>> {
        let now = Instant::now();
        let inner = self.lock();
        let found = inner.records.get(id).filter(|k| k.seq != 0 || k.expires > now).map(|k| k.record.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn list<'a>(
        &'a self,
        principal: Option<&'a str>,
        after: Option<&'a Position>,
        limit: usize,
    ) -> StoreFuture<'a, Listed> {
        Box::pin(std::future::ready(Ok(self.list_now(principal, after, limit))))
    }
}
