//! A noise-free figure: instructions the bridge executes per delivered event
//! and per command, counted by valgrind's callgrind. The bridge runs under
//! callgrind; once the runtime and the subscribers (or the HTTP client) are
//! connected, `callgrind_control -z` zeroes the counters, the events (or
//! commands) go through, and `callgrind_control -d` dumps what they cost:
//! start-up, connections and shutdown stay out of the figure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};

use crate::deliver::{self, Shared};
use crate::figure::Figure;
use crate::http::HttpConn;
use crate::options::Args;
use crate::runtime::Ws;
use crate::runtime::{self, Pace, publish};
use crate::sse;
use crate::stats::now_ns;
use crate::target::{Bridge, Launch, Target};

/// Under valgrind everything in the bridge is ~50× slower.
const SLOW: Duration = Duration::from_secs(120);

/// What one callgrind run does once the bridge is up.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// A runtime and `subs` subscribers; `events` events published at `--callgrind-rate`.
    Events { subs: usize, events: usize },
    /// A runtime and one keep-alive client sending `inputs` `POST /input`, one at a time.
    Inputs { inputs: usize },
}

/// Instructions the bridge spent on `work` (between zeroing and dumping the counters).
async fn run(args: &Args, binary: &Path, dir: &Path, work: Work) -> anyhow::Result<u64> {
    let out: PathBuf = dir.join(format!("callgrind.{work:?}.out").replace([' ', '{', '}', ':', ','], ""));
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&dump);
    let mut launch = Launch::new(binary, args);
    launch.wrapper = vec![
        args.valgrind.clone().into(),
        "--tool=callgrind".into(),
        OsString::from(format!("--callgrind-out-file={}", out.display())),
    ];
    // No timer work during the runs: keepalives and pings would add
    // instructions that depend on how long the run took.
    launch.extra_env.push(("LETTA_BRIDGE_KEEPALIVE".into(), "1h".into()));
    launch.extra_env.push(("LETTA_BRIDGE_PING_INTERVAL".into(), "1h".into()));
    launch.ready_timeout = SLOW;
    let bridge = Bridge::spawn(&launch, args, dir).await?;
    let measured = async {
        let target = &bridge.target;
        let ws = runtime::connect(target, "bench", SLOW).await?;
        let pid = bridge.pid;
        match work {
            Work::Events { subs, events } => deliveries(args, pid, target, ws, subs, events).await?,
            Work::Inputs { inputs } => commands(args, pid, target, ws, inputs).await?,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        anyhow::Ok(())
    }
    .await;
    let stopped = bridge.stop(SLOW).await;
    measured?;
    stopped?;
    let text = std::fs::read_to_string(&dump).with_context(|| format!("callgrind wrote no {}", dump.display()))?;
    let total = totals(&text).with_context(|| format!("no totals/summary line in {}", dump.display()))?;
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&dump);
    Ok(total)
}

/// `callgrind_control -z` (zero the counters) or `-d` (dump them) for `pid`.
async fn control(args: &Args, pid: u32, what: &str) -> anyhow::Result<()> {
    let out = tokio::time::timeout(
        SLOW,
        tokio::process::Command::new(&args.callgrind_control).arg(what).arg(pid.to_string()).output(),
    )
    .await
    .with_context(|| format!("{} {what} timed out", args.callgrind_control.display()))?
    .with_context(|| format!("cannot run {}", args.callgrind_control.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !said.contains("OK") {
        bail!("{} {what} {pid}: {said}{}", args.callgrind_control.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Publishes `events` to `subs` subscribers and checks every delivery arrived.
async fn deliveries(args: &Args, pid: u32, target: &Target, ws: Ws, subs: usize, events: usize) -> anyhow::Result<()> {
    let (mut sink, stream) = ws.split();
    let drainer = tokio::spawn(runtime::drain(stream));
    let streams = tokio::time::timeout(SLOW, sse::open_many(target, subs, 8, |_| None))
        .await
        .context("opening subscribers under valgrind timed out")??;
    let shared = Shared::new();
    let tasks = streams.into_iter().map(|s| tokio::spawn(s.run(shared.clone(), false))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    control(args, pid, "-z").await?;
    let pace = Pace::Steady { count: events, per_sec: args.callgrind_rate };
    let o = deliver::run(shared, tasks, now_ns(), publish(&mut sink, args.size, pace), SLOW * 3).await?;
    control(args, pid, "-d").await?;
    let want = (events * subs) as u64;
    if o.total.events != want {
        bail!("under callgrind {} of {want} deliveries arrived ({} missed)", o.total.events, o.total.missed);
    }
    let _ = sink.close().await;
    drainer.abort();
    Ok(())
}

/// Sends `inputs` `POST /input` on one keep-alive connection (after one
/// warm-up request, not counted), each answered 202.
async fn commands(args: &Args, pid: u32, target: &Target, ws: Ws, inputs: usize) -> anyhow::Result<()> {
    let (_sink, stream) = ws.split();
    let drainer = tokio::spawn(runtime::drain(stream));
    let mut conn = HttpConn::connect(&target.addr).await?;
    let path = target.path("/input");
    let body = br#"{"runtime":{"agent_id":"agent-bench","conversation_id":"conv-bench"},"payload":{"kind":"create_message","messages":[{"role":"user","content":"bench"}]}}"#;
    for i in 0..=inputs {
        if i == 1 {
            control(args, pid, "-z").await?;
        }
        let r = tokio::time::timeout(SLOW, conn.request("POST", &path, Some(&target.client_token), Some(body)))
            .await
            .context("POST /input under valgrind timed out")??;
        if r.status != 202 {
            bail!("POST /input answered {}: {}", r.status, r.text());
        }
    }
    // Until the last frame has been written to the runtime.
    tokio::time::sleep(Duration::from_millis(300)).await;
    control(args, pid, "-d").await?;
    drainer.abort();
    Ok(())
}

/// The `totals:` (or `summary:`) figure of a callgrind out file: Ir first.
fn totals(text: &str) -> Option<u64> {
    let line =
        text.lines().find(|l| l.starts_with("totals:")).or_else(|| text.lines().find(|l| l.starts_with("summary:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One repetition: per delivered event at `--callgrind-subscribers`, per
/// event with one subscriber, and per `POST /input`.
pub async fn measure(args: &Args, binary: &Path, dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let k = args.callgrind_events;
    let mut figures = Vec::new();
    for subs in [args.callgrind_subscribers, 1] {
        let ir = run(args, binary, dir, Work::Events { subs, events: k }).await?;
        let per = ir as f64 / (k * subs) as f64;
        let name = if subs == 1 {
            "instructions per event, 1 sub (publish + 1 delivery)".to_owned()
        } else {
            format!("instructions per delivered event, {subs} subs")
        };
        figures.push(Figure::new(name, per, "instr").note(format!(
            "Ir {ir} for {k} events to {subs} subs at {} events/s, {} B frames",
            args.callgrind_rate, args.size
        )));
    }
    let n = args.callgrind_inputs;
    let ir = run(args, binary, dir, Work::Inputs { inputs: n }).await?;
    figures.push(
        Figure::new("instructions per POST /input (request → frame → 202)", ir as f64 / n as f64, "instr")
            .note(format!("Ir {ir} for {n} inputs, one keep-alive client")),
    );
    Ok(figures)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_totals_then_summary() {
        assert_eq!(super::totals("events: Ir\nsummary: 42\n"), Some(42));
        assert_eq!(super::totals("events: Ir\ntotals: 7\nsummary: 42\n"), Some(7));
    }
}
