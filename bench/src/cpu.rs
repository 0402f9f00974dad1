//! CPU time of a process (all its threads), from `/proc/PID/stat`'s utime
//! and stime, to say how much of a core Redis or a bridge used over a run.

use std::time::{Duration, Instant};

use anyhow::Context;

/// User + system CPU time `pid` has used so far.
pub fn used(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("no process {pid}"))?;
    // The command name (field 2) may hold spaces; count fields after its ')'.
    let rest = &stat[stat.rfind(')').context("odd /proc/PID/stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based), i.e. 12 and 13 after ')'.
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("no utime/stime")?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU use of a set of processes from now until [`Meter::percent`].
pub struct Meter {
    pids: Vec<u32>,
    start: Vec<Duration>,
    at: Instant,
}

impl Meter {
    pub fn start(pids: &[u32]) -> anyhow::Result<Self> {
        let start = pids.iter().map(|&p| used(p)).collect::<anyhow::Result<_>>()?;
        Ok(Self { pids: pids.to_vec(), start, at: Instant::now() })
    }

    /// Their CPU time since the start, summed, in seconds, and as % of one
    /// core over the wall time since the start (clock-tick resolution, 10 ms
    /// here).
    pub fn read(&self) -> anyhow::Result<Usage> {
        let wall = self.at.elapsed().as_secs_f64();
        let mut cpu = 0.0;
        for (&p, s) in self.pids.iter().zip(&self.start) {
            cpu += used(p)?.saturating_sub(*s).as_secs_f64();
        }
        Ok(Usage { secs: cpu, percent: cpu / wall.max(1e-9) * 100.0 })
    }
}

/// CPU used over a span.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub secs: f64,
    /// Of one core.
    pub percent: f64,
}

impl Usage {
    /// Microseconds of CPU per one of `n` things done.
    pub fn us_per(&self, n: u64) -> f64 {
        self.secs * 1e6 / n.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time() {
        let before = used(std::process::id()).unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(used(std::process::id()).unwrap() >= before);
    }
}
