//! Liveness: each instance holds a lease it renews every third of
//! LETTA_BRIDGE_NODE_TTL, and on each renewal reaps the instances whose
//! lease expired (their runtimes go offline, reason `instance_lost`, in one
//! script, so one instance wins). An instance that could not renew for half
//! the TTL fences itself — closes its runtime sockets so that they reconnect
//! to an instance that can reach the engine — before its lease can expire.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::RedisError;

use super::Node;
use super::mirror::unix_ms;

pub(super) const INSTANCES: &str = "letta_bridge_instances_alive";
pub(super) const REAPED: &str = "letta_bridge_instances_reaped_total";

/// Renews the lease and reaps until the process ends.
pub(super) async fn run(node: Arc<Node>) {
    let ttl = node.settings.node_ttl;
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match renew(&node).await {
            Ok(()) => node.unfence(),
            Err(e) => {
                node.engine.failed(&e);
                let failing = node.engine.failing_for().unwrap_or_default();
                if failing >= ttl / 2 {
                    node.fence("lease not renewed for half of LETTA_BRIDGE_NODE_TTL");
                }
            }
        }
    }
}

/// Renews this instance's lease, then reaps expired ones.
pub(super) async fn renew(node: &Node) -> Result<(), RedisError> {
    let ttl = node.settings.node_ttl.as_millis().to_string();
    let info = serde_json::json!({"node": node.id, "version": env!("CARGO_PKG_VERSION")}).to_string();
    let local = unix_ms();
    let (engine_now, alive): (u64, Vec<String>) = node.engine.script("heartbeat", &[&node.id, &ttl, &info]).await?;
    node.clock_offset_ms.store(engine_now as i64 - local as i64, Ordering::Relaxed);
    ::metrics::gauge!(INSTANCES).set(alive.len() as f64);
    if let Some(appender) = node.appender.get() {
        ::metrics::gauge!(super::appender::QUEUED).set(appender.queued() as f64);
    }
    *node.instances.lock().unwrap_or_else(|p| p.into_inner()) = alive;
    reap(node, "").await?;
    let forget = node.settings.forget_offline_after.as_millis().to_string();
    let forgotten: i64 = node.engine.script("forget", &[&forget]).await?;
    if forgotten > 0 {
        tracing::debug!(forgotten, "forgot runtimes offline for LETTA_BRIDGE_FORGET_OFFLINE_AFTER");
    }
    Ok(())
}

/// Reaps instances whose lease expired, and `also` whatever its lease.
pub(super) async fn reap(node: &Node, also: &str) -> Result<(), RedisError> {
    let limits = node.settings.limits;
    let args = [
        super::new_epoch(),
        limits.events.to_string(),
        limits.bytes.to_string(),
        limits.max_age.as_millis().to_string(),
        node.id.clone(),
        also.to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let reaped: Vec<String> = node.engine.script("reap", &args).await?;
    for lost in reaped.iter().filter(|n| **n != node.id) {
        ::metrics::counter!(REAPED).increment(1);
        tracing::warn!(instance = %lost, "a bridge instance's lease expired; its runtimes are offline (instance_lost)");
    }
    Ok(())
}

/// Gives the lease up (a clean shutdown).
pub(super) async fn leave(node: &Node) {
    if let Err(e) = node.engine.script::<i64>("leave", &[&node.id]).await {
        tracing::warn!(error = %e, "could not give the cluster lease up; it expires by itself");
    }
}
