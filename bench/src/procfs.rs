//! What `/proc` says about a process: its RSS (as read, or once it stops
//! moving), a `kB` field of its status, its open descriptors and their limit.
//! The memory, soak and relay figures and the spawned bridges' RSS ceiling
//! read it here.

use std::time::Duration;

use anyhow::Context;

/// `VmRSS` of `pid`, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// A `kB` field of `/proc/PID/status`, in bytes.
pub fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("no process {pid}"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field}"))?;
    Ok(kb * 1024)
}

/// RSS once it stops moving: samples 250 ms apart until two agree within
/// 64 KiB (at most 5 s).
pub async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut last = rss(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rss(pid)?;
        if now.abs_diff(last) <= 64 * 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// The soft open-file limit of `pid` and how many descriptors it has open.
pub fn fds(pid: u32) -> anyhow::Result<(usize, usize)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok((soft, open))
}
