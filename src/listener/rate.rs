//! The connect rate: new connections per second this instance accepts
//! before it refuses their requests. A token bucket the accept loop owns
//! (no lock); a connection accepted without a token is served all the
//! same, marked ([`OverConnectRate`]), so that the HTTP layer can refuse
//! it with a `429` while still letting the runtime's own requests through
//! (a runtime reconnecting during a flood keeps its way in, as with the
//! connection cap's reserve).

use tokio::time::Instant;

/// On each request of a connection accepted beyond the connect rate: the
/// rate it went beyond.
#[derive(Debug, Clone, Copy)]
pub struct OverConnectRate {
    /// New connections per second.
    pub per_second: f64,
    /// Most accepted at once after a quiet spell.
    pub burst: u32,
}

/// The accept loop's bucket.
pub(super) struct ConnectRate {
    limit: OverConnectRate,
    tokens: f64,
    at: Instant,
}

impl ConnectRate {
    /// A full bucket of `limit`.
    pub(super) fn new(limit: OverConnectRate) -> Self {
        Self { limit, tokens: f64::from(limit.burst), at: Instant::now() }
    }

    /// Takes a token for a connection accepted now: `None` when one was
    /// there, else the mark its requests carry.
    pub(super) fn admit(&mut self) -> Option<OverConnectRate> {
        let now = Instant::now();
        let refilled = now.duration_since(self.at).as_secs_f64() * self.limit.per_second;
        self.tokens = (self.tokens + refilled).min(f64::from(self.limit.burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        Some(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn connections_beyond_the_burst_are_marked_until_the_bucket_refills() {
        let mut rate = ConnectRate::new(OverConnectRate { per_second: 10.0, burst: 2 });
        assert!(rate.admit().is_none());
        assert!(rate.admit().is_none());
        assert!(rate.admit().is_some(), "the burst is spent");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(rate.admit().is_none(), "a tenth of a second brings one back");
    }
}
