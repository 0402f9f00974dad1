//! Dead-instance detection: two instances with a short
//! `LETTA_BRIDGE_NODE_TTL`, the fake runtime on A, a subscriber on B; A is
//! SIGKILLed (no clean shutdown, no `runtime_offline` of its own) and the
//! figure is the time from the kill until B's subscriber gets
//! `runtime_offline` with `reason: "instance_lost"`.
//!
//! What to expect: A's lease expires TTL after its last renewal (renewals
//! every TTL/3), and B reaps on its own renewals (every TTL/3), so the
//! detection falls between 2/3 and 4/3 of the TTL, plus the reap script
//! and B's mirror read. The kill comes at a random moment (up to TTL/3
//! after B saw the runtime) so that the repetitions sample the phases.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cluster::{as_device, wait_runtime};
use crate::crossing::clustered;
use crate::figure::Figure;
use crate::options::Args;
use crate::runtime;
use crate::sse;

/// One kill: milliseconds to `instance_lost` on B.
pub async fn dead_instance(args: &Args, dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let ttl = Duration::from_secs_f64(args.node_ttl);
    let ms = clustered(args, dir, 2, Some(ttl), async |c| {
        let ws = runtime::connect(&as_device(c.target(0), "bench"), "bench", Duration::from_secs(10)).await?;
        wait_runtime(c.target(1), "bench", true, Duration::from_secs(10)).await?;
        let mut stream = sse::open(c.target(1), None, "runtime_offline").await?;
        tokio::time::sleep(ttl.mul_f64(random_fraction()? / 3.0)).await;
        let killed = Instant::now();
        c.instances.remove(0).kill().await?;
        let block = stream.next_named("runtime_offline", ttl * 3 + Duration::from_secs(10)).await?;
        let took = killed.elapsed();
        drop(ws);
        if !block.contains("\"instance_lost\"") {
            bail!("the first runtime_offline on B was not instance_lost: {block}");
        }
        anyhow::Ok(took.as_secs_f64() * 1e3)
    })
    .await?;
    let ttl_ms = ttl.as_secs_f64() * 1e3;
    Ok(vec![
        Figure::new(format!("SIGKILL A → instance_lost on B, NODE_TTL {ttl_ms:.0} ms"), ms, "ms").note(format!(
            "expected {:.0}–{:.0} ms (2/3 to 4/3 of the TTL) plus the reap and the mirror read",
            ttl_ms * 2.0 / 3.0,
            ttl_ms * 4.0 / 3.0
        )),
        Figure::new(format!("SIGKILL A → instance_lost on B ÷ NODE_TTL {ttl_ms:.0} ms"), ms / ttl_ms, "×"),
    ])
}

/// A number in [0, 1) from the kernel's random source.
fn random_fraction() -> anyhow::Result<f64> {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0))
}
