//! What each connection is doing, as the listener's watchdog needs to know
//! it: requests in flight, when it went idle, when a request head started
//! arriving, whether its writes are stuck. From that one record come the
//! header-read and idle timeouts and the choice of a connection to close
//! when every descriptor is taken.
//!
//! The connection's reader and writer ([`super::io::Tracked`]) and its
//! service ([`super::service`]) update the record with relaxed atomics (no
//! lock on the request path); the accept loop reads it on each tick
//! ([`Watched::reap`]) and, at the connection cap, to pick whom to close
//! ([`Watched::evict_one`]). A connection told to close hears it through
//! its own socket: [`Activity::close`] wakes the task that last waited on
//! it, and its next read sees the end of the stream (its next write an
//! error), so hyper closes it as it would a peer that left — no timer and
//! no extra future in the connection's task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures_util::task::AtomicWaker;

/// A connection has served at least one request.
const SERVED: u8 = 1;
/// It was upgraded (a WebSocket): its socket left HTTP, no timeout applies.
const UPGRADED: u8 = 2;
/// It speaks HTTP/2 (its frames between requests are not request heads).
const H2: u8 = 4;

/// The listener's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accept (TLS handshake and HTTP/2 preface included) to the first
    /// request's head, and on a kept-alive HTTP/1 connection from the next
    /// request's first byte to the end of its head.
    pub header: Duration,
    /// A connection with nothing in flight closes after this long; so does
    /// one whose writes make no progress for this long (a peer that stopped
    /// reading).
    pub idle: Duration,
}

/// Why a connection was closed by the listener (the `reason` label of
/// `letta_bridge_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Closed {
    /// Its request head did not arrive within the header timeout.
    HeaderTimeout = 1,
    /// Nothing in flight for the idle timeout.
    IdleTimeout = 2,
    /// Its writes made no progress for the idle timeout.
    WriteStalled = 3,
    /// Closed to make room for a new connection at the cap.
    Evicted = 4,
}

impl Closed {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::WriteStalled => "write_stalled",
            Closed::Evicted => "evicted",
        }
    }
}

use crate::metrics::CONNECTIONS_CLOSED as CLOSED;

/// Milliseconds on tokio's clock since the first call (so that tests can
/// pause it); 0 is never returned, so 0 can mean "unset".
pub fn now_ms() -> u64 {
    static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(tokio::time::Instant::now);
    u64::try_from(tokio::time::Instant::now().saturating_duration_since(base).as_millis()).unwrap_or(u64::MAX) + 1
}

/// One connection's record. Shared (`Arc`) by its reader/writer, its
/// service and the listener's list of connections.
#[derive(Debug, Default)]
pub struct Activity {
    flags: AtomicU8,
    /// Requests whose response has not ended.
    in_flight: AtomicU32,
    /// When its task first ran (0 until then: time a burst of connections
    /// waits for this process is not the client's), or when its last
    /// response ended (ms, [`now_ms`]).
    since: AtomicU64,
    /// When the first byte of a request head arrived on an idle kept-alive
    /// HTTP/1 connection; 0 when none has.
    head_started: AtomicU64,
    /// Since when a write has been waiting for the peer to read; 0 when none is.
    write_blocked: AtomicU64,
    /// Why it was told to close ([`Closed`]); 0 while it was not.
    reason: AtomicU8,
    /// The task that last waited on the socket: woken when it is told to close.
    waker: AtomicWaker,
}

impl Activity {
    /// A connection just accepted, not yet served by its task.
    pub fn new() -> Self {
        Self::default()
    }

    /// Its task runs for the first time, at `now` (ms): the header timeout
    /// starts. (Under a burst of connections, tasks wait their turn; the
    /// client is not to blame for that wait.)
    pub fn started(&self, now: u64) {
        let _ = self.since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn has(&self, flag: u8) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }

    /// It speaks HTTP/2.
    pub fn set_h2(&self) {
        self.flags.fetch_or(H2, Ordering::Relaxed);
    }

    /// Bytes arrived from the peer.
    pub fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.has(SERVED)
            && !self.has(H2)
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// A write could not proceed: the peer is not reading.
    pub fn on_write_blocked(&self) {
        if self.write_blocked.load(Ordering::Relaxed) == 0 {
            self.write_blocked.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// A write went through.
    pub fn on_write_progress(&self) {
        if self.write_blocked.load(Ordering::Relaxed) != 0 {
            self.write_blocked.store(0, Ordering::Relaxed);
        }
    }

    /// A request's head was read; its response is in flight until
    /// [`Activity::end_request`].
    pub fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.flags.fetch_or(SERVED, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
    }

    /// A response ended (or was dropped).
    pub fn end_request(&self) {
        self.since.store(now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The connection became a WebSocket: no listener timeout applies any more.
    pub fn set_upgraded(&self) {
        self.flags.fetch_or(UPGRADED, Ordering::Relaxed);
    }

    /// When it is due to close, and why (ms, [`now_ms`]); `None` while a
    /// request is in flight and its writes go through, or once upgraded.
    pub fn due(&self, t: Timeouts) -> Option<(u64, Closed)> {
        if self.has(UPGRADED) {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let write = match self.write_blocked.load(Ordering::Relaxed) {
            0 => None,
            since => Some((since.saturating_add(ms(t.idle)), Closed::WriteStalled)),
        };
        let idle = if self.in_flight.load(Ordering::Relaxed) > 0 {
            None
        } else {
            match self.head_started.load(Ordering::Relaxed) {
                // Its task has not run yet: it will, and start the clock.
                0 if self.since.load(Ordering::Relaxed) == 0 => None,
                0 if !self.has(SERVED) => {
                    Some((self.since.load(Ordering::Relaxed).saturating_add(ms(t.header)), Closed::HeaderTimeout))
                }
                0 => Some((self.since.load(Ordering::Relaxed).saturating_add(ms(t.idle)), Closed::IdleTimeout)),
                started => Some((started.saturating_add(ms(t.header)), Closed::HeaderTimeout)),
            }
        };
        match (write, idle) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// True when closing it loses no request being served: nothing in
    /// flight, or a peer that stopped reading. Never an upgraded one.
    pub fn evictable(&self) -> bool {
        !self.has(UPGRADED)
            && (self.in_flight.load(Ordering::Relaxed) == 0 || self.write_blocked.load(Ordering::Relaxed) != 0)
    }

    /// Tells the connection to close (once; later calls change nothing):
    /// its socket reads as ended from now on, and its task is woken to see it.
    pub fn close(&self, why: Closed) {
        if self.reason.compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            ::metrics::counter!(CLOSED, "reason" => why.label()).increment(1);
            self.waker.wake();
        }
    }

    /// True once it was told to close.
    pub fn closing(&self) -> bool {
        self.reason.load(Ordering::Acquire) != 0
    }

    /// Remembers the task waiting on the socket, to wake it on [`Activity::close`].
    pub fn waiting(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Why it was told to close, if it was.
    pub fn closed_for(&self) -> Option<Closed> {
        Some(match self.reason.load(Ordering::Acquire) {
            0 => return None,
            1 => Closed::HeaderTimeout,
            2 => Closed::IdleTimeout,
            3 => Closed::WriteStalled,
            _ => Closed::Evicted,
        })
    }
}

/// The connections the listener watches, in accept order. Upgraded and
/// closed ones leave it on the next tick.
#[derive(Debug, Default)]
pub struct Watched {
    /// Held for a walk of the list (each tick, each eviction), never across
    /// an `.await`.
    list: Mutex<VecDeque<Weak<Activity>>>,
}

impl Watched {
    /// Watches a new connection.
    pub fn push(&self, activity: &Arc<Activity>) {
        self.lock().push_back(Arc::downgrade(activity));
    }

    /// Tells every connection that is due to close at `now` (ms) to close,
    /// and forgets the ones that are gone or upgraded. Returns how many
    /// are watched.
    pub fn reap(&self, now: u64, t: Timeouts) -> usize {
        let mut list = self.lock();
        list.retain(|weak| {
            let Some(activity) = weak.upgrade() else { return false };
            if activity.has(UPGRADED) || activity.closing() {
                return false;
            }
            if let Some((at, why)) = activity.due(t)
                && at <= now
            {
                activity.close(why);
                return false;
            }
            true
        });
        list.len()
    }

    /// Tells the oldest connection that can go without losing a request
    /// ([`Activity::evictable`]) to close; false when none can.
    pub fn evict_one(&self) -> bool {
        let mut list = self.lock();
        // Busy ones go to the back, so that the next walk starts elsewhere.
        for _ in 0..list.len() {
            let Some(weak) = list.pop_front() else { break };
            let Some(activity) = weak.upgrade() else { continue };
            if activity.has(UPGRADED) || activity.closing() {
                continue;
            }
            if activity.evictable() {
                activity.close(Closed::Evicted);
                return true;
            }
            list.push_back(weak);
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Weak<Activity>>> {
        self.list.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts { header: Duration::from_millis(100), idle: Duration::from_millis(1000) };

    fn at(now: u64) -> Activity {
        let a = Activity::new();
        a.started(now);
        a
    }

    #[test]
    fn a_connection_whose_task_has_not_run_yet_is_not_due() {
        let a = Activity::new();
        assert_eq!(a.due(T), None);
        a.started(10);
        a.started(99);
        assert_eq!(a.due(T), Some((110, Closed::HeaderTimeout)), "the first run starts the clock");
    }

    #[test]
    fn a_connection_that_sends_nothing_is_due_at_the_header_timeout() {
        let a = at(10);
        assert_eq!(a.due(T), Some((110, Closed::HeaderTimeout)));
        assert!(a.evictable());
    }

    #[test]
    fn a_request_in_flight_has_no_deadline_and_cannot_be_evicted_unless_its_writes_stall() {
        let a = at(10);
        a.begin_request();
        assert_eq!(a.due(T), None);
        assert!(!a.evictable());
        a.write_blocked.store(500, Ordering::Relaxed);
        assert_eq!(a.due(T), Some((1500, Closed::WriteStalled)));
        assert!(a.evictable(), "a peer that stopped reading loses nothing it is reading");
        a.on_write_progress();
        assert_eq!(a.due(T), None);
    }

    #[test]
    fn a_kept_alive_connection_is_due_at_the_idle_timeout_or_the_header_timeout_once_a_head_starts() {
        let a = at(10);
        a.begin_request();
        a.end_request();
        let ended = a.since.load(Ordering::Relaxed);
        assert_eq!(a.due(T), Some((ended + 1000, Closed::IdleTimeout)));
        a.head_started.store(ended + 5, Ordering::Relaxed);
        assert_eq!(a.due(T), Some((ended + 105, Closed::HeaderTimeout)));
        a.begin_request();
        assert_eq!(a.due(T), None, "the head arrived");
    }

    #[test]
    fn bytes_between_http2_requests_are_not_request_heads() {
        let a = at(10);
        a.set_h2();
        a.begin_request();
        a.end_request();
        a.on_read();
        assert_eq!(a.due(T).map(|(_, why)| why), Some(Closed::IdleTimeout));
    }

    #[test]
    fn an_upgraded_connection_is_never_due_nor_evicted() {
        let a = at(10);
        a.begin_request();
        a.set_upgraded();
        a.end_request();
        assert_eq!(a.due(T), None);
        assert!(!a.evictable());
    }

    #[test]
    fn reaping_closes_what_is_due_and_eviction_takes_the_oldest_idle_one() {
        let watched = Watched::default();
        let (old, busy, young) = (Arc::new(at(1)), Arc::new(at(2)), Arc::new(at(50)));
        busy.begin_request();
        for a in [&old, &busy, &young] {
            watched.push(a);
        }
        assert_eq!(watched.reap(120, T), 2, "the oldest is past its header timeout");
        assert_eq!(old.closed_for(), Some(Closed::HeaderTimeout));
        assert!(old.closing());
        assert!(watched.evict_one());
        assert_eq!(young.closed_for(), Some(Closed::Evicted), "the busy one is skipped");
        assert_eq!(busy.closed_for(), None);
        assert!(!watched.evict_one(), "nothing else can go");
        drop(busy);
        assert_eq!(watched.reap(120, T), 0, "gone connections are forgotten");
    }
}
