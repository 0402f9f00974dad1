//! One delivery run, shared by the bridge scenarios and the raw relay: a
//! publisher sends while subscriber tasks count what arrives; the run ends
//! when every subscriber has seen (or been told it missed) every published
//! event, or when deliveries stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::figure::Figure;
use crate::stats::Hist;

/// What one subscriber saw.
#[derive(Default)]
pub struct SubStats {
    /// Benchmark events received.
    pub events: u64,
    /// Bytes received on the socket (framing included).
    pub bytes: u64,
    /// Events the server said this subscriber missed (`lagged`).
    pub missed: u64,
    /// `lagged` notices received.
    pub lags: u64,
    /// Latencies, when asked for.
    pub hist: Option<Hist>,
    /// When the last benchmark event arrived.
    pub last_ns: u64,
    /// Why the subscriber stopped early, if it did.
    pub error: Option<String>,
}

impl SubStats {
    pub fn new(latency: bool) -> Self {
        Self { hist: latency.then(Hist::default), ..Self::default() }
    }

    fn merge(&mut self, other: SubStats) {
        self.events += other.events;
        self.bytes += other.bytes;
        self.missed += other.missed;
        self.lags += other.lags;
        self.last_ns = self.last_ns.max(other.last_ns);
        match (&mut self.hist, &other.hist) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.hist = Some(b.clone()),
            _ => {}
        }
        if self.error.is_none() {
            self.error = other.error;
        }
    }
}

/// What subscriber tasks share with the coordinator (and, for a windowed
/// publisher, with the publishers).
pub struct Shared {
    /// Events received plus events missed, over all subscribers.
    pub seen: AtomicU64,
    stop: watch::Sender<bool>,
    /// Events published so far, over all windowed publishers.
    pub published: AtomicU64,
    /// Woken when `seen` grows, if `windowed`.
    pub progress: Notify,
    windowed: bool,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Self::with_window(false)
    }

    /// For runs whose publishers keep a window of events in flight: the
    /// subscribers wake them as events arrive.
    pub fn windowed() -> Arc<Self> {
        Self::with_window(true)
    }

    fn with_window(windowed: bool) -> Arc<Self> {
        Arc::new(Self {
            seen: AtomicU64::new(0),
            stop: watch::Sender::new(false),
            published: AtomicU64::new(0),
            progress: Notify::new(),
            windowed,
        })
    }

    /// Adds `n` to what the subscribers saw.
    pub fn saw(&self, n: u64) {
        self.seen.fetch_add(n, Ordering::Relaxed);
        if self.windowed {
            self.progress.notify_waiters();
        }
    }

    /// Resolves when the coordinator ends the run.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

/// The outcome of a run, over all subscribers.
pub struct Outcome {
    pub subscribers: usize,
    pub published: u64,
    pub publish_time: Duration,
    /// From the first publish to the last delivery.
    pub deliver_time: Duration,
    pub total: SubStats,
}

impl Outcome {
    pub fn published_per_sec(&self) -> f64 {
        self.published as f64 / self.publish_time.as_secs_f64()
    }

    pub fn delivered_per_sec(&self) -> f64 {
        self.total.events as f64 / self.deliver_time.as_secs_f64().max(1e-9)
    }

    /// Deliveries neither made nor reported as missed.
    pub fn lost(&self) -> u64 {
        (self.published * self.subscribers as u64).saturating_sub(self.total.events + self.total.missed)
    }

    /// `<name>: missed (lagged)`: the share of deliveries reported missed.
    pub fn missed_figure(&self, name: &str) -> Figure {
        let expected = self.published * self.subscribers as u64;
        Figure::new(
            format!("{name}: missed (lagged)"),
            self.total.missed as f64 / (expected as f64).max(1.0) * 100.0,
            "%",
        )
        .note(format!("{} lagged notices, {} events missed of {expected} sent", self.total.lags, self.total.missed))
    }
}

/// How long deliveries may pause before the run is declared over.
const QUIET: Duration = Duration::from_secs(3);

/// Runs `publish` (which returns how many events it sent and for how long),
/// then waits for the subscribers, stops them and merges their figures.
pub async fn run(
    shared: Arc<Shared>,
    subscribers: Vec<JoinHandle<SubStats>>,
    start_ns: u64,
    publish: impl Future<Output = anyhow::Result<(u64, Duration)>>,
    hard_limit: Duration,
) -> anyhow::Result<Outcome> {
    let n = subscribers.len();
    let published = publish.await;
    let stop = || {
        let _ = shared.stop.send(true);
    };
    let (published, publish_time) = match published {
        Ok(p) => p,
        Err(e) => {
            stop();
            return Err(e.context("publishing"));
        }
    };
    let want = published * n as u64;
    let deadline = tokio::time::Instant::now() + hard_limit;
    let mut last = (shared.seen.load(Ordering::Relaxed), tokio::time::Instant::now());
    loop {
        let seen = shared.seen.load(Ordering::Relaxed);
        let now = tokio::time::Instant::now();
        if seen >= want || now > deadline {
            break;
        }
        if seen != last.0 {
            last = (seen, now);
        } else if now - last.1 > QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop();
    let mut total = SubStats::default();
    for s in subscribers {
        total.merge(s.await?);
    }
    let deliver_time = Duration::from_nanos(total.last_ns.saturating_sub(start_ns));
    Ok(Outcome { subscribers: n, published, publish_time, deliver_time, total })
}

/// Records one received frame's latency from its `"t":` stamp.
pub fn stamp_of(bytes: &[u8], finder: &memchr::memmem::Finder<'_>) -> Option<u64> {
    let at = finder.find(bytes)? + finder.needle().len();
    let digits = bytes.get(at..)?.iter().take_while(|b| b.is_ascii_digit());
    let mut v = 0u64;
    let mut any = false;
    for d in digits {
        v = v.checked_mul(10)? + u64::from(d - b'0');
        any = true;
    }
    any.then_some(v)
}

/// Note the arrival of a stamped event at `now`.
pub fn record_latency(stats: &mut SubStats, stamp: Option<u64>, now: u64) {
    if let (Some(h), Some(t)) = (stats.hist.as_mut(), stamp) {
        h.record(now.saturating_sub(t));
    }
}
