//! Token buckets by key, for per-credential rate limits: each key holds
//! up to `burst` tokens, refilled at `rate` per second; a request takes
//! one or is told how long until one is there.
//!
//! Bounded: at most [`MAX_BUCKETS`] keys in memory. A bucket that is full
//! again is the same as no bucket, so those go first; when every bucket
//! is still draining, the oldest is forgotten (its key starts full: a
//! stated leniency, reached only with that many credentials busy at once).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::StoreFuture;

/// Most buckets kept in memory.
pub const MAX_BUCKETS: usize = 100_000;

/// A rate: `per_second` tokens refilled each second, at most `burst` held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens refilled per second.
    pub per_second: f64,
    /// Most tokens held (the burst allowed after a quiet spell).
    pub burst: u32,
}

/// Where buckets are kept: this process, or the cluster's Redis.
pub trait RateStore: Send + Sync + 'static {
    /// Takes a token from `key`'s bucket: `None` when one was there, else
    /// how long until one is.
    fn take<'a>(&'a self, key: &'a str, rate: Rate) -> StoreFuture<'a, Option<Duration>>;
}

/// One bucket: tokens at `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets in this process's memory.
#[derive(Default)]
pub struct MemoryRates {
    /// Short map operations only; never held across `.await`.
    buckets: Mutex<HashMap<Box<str>, Bucket>>,
}

impl MemoryRates {
    /// Takes a token from `key`'s bucket at `now` (see [`RateStore::take`]).
    pub fn take_at(&self, key: &str, rate: Rate, now: Instant) -> Option<Duration> {
        let burst = f64::from(rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second < burst);
            if buckets.len() >= MAX_BUCKETS {
                let oldest = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| k.clone());
                oldest.map(|k| buckets.remove(&k));
            }
        }
        let bucket = buckets.entry(key.into()).or_insert(Bucket { tokens: burst, at: now });
        let refilled = now.duration_since(bucket.at).as_secs_f64() * rate.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return None;
        }
        let wait = if rate.per_second > 0.0 { (1.0 - bucket.tokens) / rate.per_second } else { 3600.0 };
        Some(Duration::from_secs_f64(wait.min(3600.0)))
    }

    /// Buckets held now.
    pub fn buckets(&self) -> usize {
        self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

impl RateStore for MemoryRates {
    fn take<'a>(&'a self, key: &'a str, rate: Rate) -> StoreFuture<'a, Option<Duration>> {
        let taken = self.take_at(key, rate, Instant::now());
        Box::pin(async move { Ok(taken) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { per_second: 2.0, burst: 3 };

    #[test]
    fn a_bucket_allows_its_burst_then_says_how_long_until_the_next_token() {
        let rates = MemoryRates::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(rates.take_at("a", RATE, now), None);
        }
        let wait = rates.take_at("a", RATE, now).expect("the burst is spent");
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(rates.take_at("a", RATE, now + Duration::from_millis(500)), None, "refilled at the rate");
        assert_eq!(rates.take_at("b", RATE, now), None, "another key has its own bucket");
    }

    #[test]
    fn buckets_are_bounded_and_full_ones_leave_first() {
        let rates = MemoryRates::default();
        let now = Instant::now();
        for i in 0..MAX_BUCKETS {
            rates.take_at(&i.to_string(), RATE, now);
        }
        let later = now + Duration::from_secs(1);
        assert_eq!(rates.take_at("new", RATE, later), None);
        assert_eq!(rates.buckets(), 1, "every other bucket was full again");
    }
}
