//! Liveness: each instance holds a lease it renews every third of
//! LETTA_BRIDGE_NODE_TTL, and on each renewal reaps the instances whose
//! lease expired (their runtimes go offline, reason `instance_lost`, in one
//! script, so one instance wins). An instance that could not renew for half
//! the TTL fences itself ([`super::fencing`]) before its lease can expire.
//! Each renewal also learns the engine's clock ([`Lease`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::RedisError;

use super::Node;
use super::appender::Appender;
use super::engine::Lua;
use super::epoch::new_epoch;

use crate::metrics::{INSTANCES, INSTANCES_REAPED as REAPED};

/// What the last renewal of this instance's lease learnt.
#[derive(Default)]
pub(super) struct Lease {
    /// Engine time minus local time, in ms.
    clock_offset_ms: AtomicI64,
    /// The instances holding a lease. Replaced whole on each renewal.
    instances: Mutex<Vec<String>>,
}

impl Lease {
    /// Engine time now (local time corrected by the last renewal).
    pub(super) fn engine_now_ms(&self) -> u64 {
        engine_ms(unix_ms(), self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// The instances holding a lease, this one included.
    pub(super) fn instances(&self) -> Vec<String> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn renewed(&self, engine_now_ms: u64, local_ms: u64, alive: Vec<String>) {
        self.clock_offset_ms.store(engine_now_ms as i64 - local_ms as i64, Ordering::Relaxed);
        *self.instances.lock().unwrap_or_else(|p| p.into_inner()) = alive;
    }
}

/// Local Unix ms corrected by `offset` (engine minus local).
fn engine_ms(local_ms: u64, offset_ms: i64) -> u64 {
    (local_ms as i64 + offset_ms).max(0) as u64
}

/// How often a lease of `ttl` is renewed: three times per lease.
fn renew_every(ttl: Duration) -> Duration {
    ttl / 3
}

/// Whether an instance whose engine calls have failed for `failing_for`
/// fences itself, with a lease of `ttl`: from half of it on.
fn must_fence(failing_for: Option<Duration>, ttl: Duration) -> bool {
    failing_for.is_some_and(|f| f >= ttl / 2)
}

/// Renews the lease and reaps until the instance leaves the cluster.
pub(super) async fn run(node: std::sync::Arc<Node>, appender: std::sync::Arc<Appender>) {
    let ttl = node.settings.node_ttl;
    let mut tick = tokio::time::interval(renew_every(ttl));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = node.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        ::metrics::gauge!(crate::metrics::APPEND_QUEUE).set(appender.queued() as f64);
        match renew(&node).await {
            Ok(()) => node.fence.lift(),
            Err(e) => {
                node.engine.failed(&e);
                if must_fence(node.engine.failing_for(), ttl) {
                    node.fence.fence("lease not renewed for half of LETTA_BRIDGE_NODE_TTL");
                }
            }
        }
    }
}

/// Renews this instance's lease, then reaps expired ones.
pub(super) async fn renew(node: &Node) -> Result<(), RedisError> {
    let ttl = node.settings.node_ttl.as_millis() as u64;
    let info = serde_json::json!({"node": node.id, "version": env!("CARGO_PKG_VERSION")}).to_string();
    let local = unix_ms();
    let (engine_now, alive): (u64, Vec<String>) =
        node.engine.script(Lua::Log, "heartbeat").arg(&node.id).arg(ttl).arg(info).run().await?;
    ::metrics::gauge!(INSTANCES).set(alive.len() as f64);
    node.lease.renewed(engine_now, local, alive);
    reap(node, "").await?;
    let forget = node.settings.forget_offline_after.as_millis() as u64;
    let forgotten: i64 = node.engine.script(Lua::Log, "forget").arg(forget).run().await?;
    if forgotten > 0 {
        tracing::debug!(forgotten, "forgot runtimes offline for LETTA_BRIDGE_FORGET_OFFLINE_AFTER");
    }
    Ok(())
}

/// Takes over what a process that ran under this instance id left (its
/// runtimes go offline); retried while the log waits for its check after
/// its primary changed (`GATED`, at most a few seconds: `log.lua`).
pub(super) async fn take_over(node: &Node) -> Result<(), RedisError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match reap(node, &node.id).await {
            Err(e) if e.code() == Some("GATED") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done => return done,
        }
    }
}

/// Reaps instances whose lease expired, and `also` whatever its lease.
pub(super) async fn reap(node: &Node, also: &str) -> Result<(), RedisError> {
    let limits = node.settings.limits;
    let reaped: Vec<String> = node
        .engine
        .script(Lua::Log, "reap")
        .arg(new_epoch())
        .arg(limits.events)
        .arg(limits.bytes)
        .arg(limits.max_age.as_millis() as u64)
        .arg(&node.id)
        .arg(also)
        .run()
        .await?;
    for lost in reaped.iter().filter(|n| **n != node.id) {
        ::metrics::counter!(REAPED).increment(1);
        tracing::warn!(instance = %lost, "a bridge instance's lease expired; its runtimes are offline (instance_lost)");
    }
    Ok(())
}

/// Gives the lease up (a clean shutdown).
pub(super) async fn leave(node: &Node) {
    if let Err(e) = node.engine.script(Lua::Log, "leave").arg(&node.id).run::<i64>().await {
        tracing::warn!(error = %e, "could not give the cluster lease up; it expires by itself");
    }
}

/// Now as Unix milliseconds.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_time_is_local_time_corrected_by_the_last_renewal() {
        let lease = Lease::default();
        lease.renewed(10_500, 10_000, vec!["n-a".into(), "n-b".into()]);
        assert_eq!(lease.clock_offset_ms.load(Ordering::Relaxed), 500);
        assert_eq!(engine_ms(20_000, 500), 20_500);
        assert_eq!(engine_ms(20_000, -700), 19_300, "an engine clock behind this one");
        assert_eq!(engine_ms(100, -700), 0, "never before 1970");
        assert_eq!(lease.instances(), ["n-a", "n-b"]);
    }

    #[test]
    fn a_lease_is_renewed_three_times_per_ttl() {
        assert_eq!(renew_every(Duration::from_secs(15)), Duration::from_secs(5));
        let ttl = Duration::from_secs(1);
        assert!(renew_every(ttl) * 3 <= ttl && renew_every(ttl) * 3 > ttl - Duration::from_millis(1));
    }

    #[test]
    fn an_instance_fences_itself_after_failing_for_half_its_lease() {
        let ttl = Duration::from_secs(15);
        assert!(!must_fence(None, ttl));
        assert!(!must_fence(Some(Duration::from_millis(7_499)), ttl));
        assert!(must_fence(Some(Duration::from_millis(7_500)), ttl));
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_that_cannot_renew_fences_itself_by_the_time_its_lease_expires() {
        for ttl in [Duration::from_secs(1), Duration::from_secs(15), Duration::from_secs(60)] {
            // The last renewal that reached the engine: the lease runs until `renewed + ttl`.
            let renewed = tokio::time::Instant::now();
            let mut failing_since = None;
            let mut tick = tokio::time::interval_at(renewed + renew_every(ttl), renew_every(ttl));
            loop {
                tick.tick().await;
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if must_fence(Some(since.elapsed()), ttl) {
                    break;
                }
            }
            assert!(renewed.elapsed() <= ttl, "fenced {:?} after the last renewal, lease {ttl:?}", renewed.elapsed());
        }
    }
}
