//! Memory: the bridge's RSS idle and per idle SSE subscriber. Subscriptions
//! are held by `bench hold` child processes (≤ 9,000 each) from several
//! 127.0.0.x source addresses; the subscriber count is capped by what the
//! bridge's own open-file limit leaves, and the cap is explained. The same
//! children, counting what they receive, are the soak run's subscribers.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::figure::{Figure, Goal};
use crate::hold::{COUNTING_PER_PROCESS, Counts, PER_PROCESS};
use crate::procfs::{fds, settled_rss, status_bytes};
use crate::relay;
use crate::target::Target;

/// Descriptors left free in the bridge (for the listener's next accept, logs,
/// the runtime's socket).
const FD_HEADROOM: usize = 16;

/// Child processes holding subscriptions.
pub struct Holders {
    children: Vec<Holder>,
    /// Subscriptions open over all children.
    pub held: usize,
    /// Set when the bridge refused subscriptions at its own stated limit of
    /// streams (503 `too-many-streams`): what it said. Those are not failures.
    pub refused_at_limit: Option<String>,
    /// The children read and count events (`bench hold --counting`).
    counting: bool,
}

struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Holders {
    pub fn new(counting: bool) -> Self {
        Self { children: Vec::new(), held: 0, refused_at_limit: None, counting }
    }

    /// Opens `count` more subscriptions in new children.
    pub async fn add(&mut self, target: &Target, count: usize) -> anyhow::Result<()> {
        let per_process = if self.counting { COUNTING_PER_PROCESS } else { PER_PROCESS };
        let first_new = self.children.len();
        let mut left = count;
        while left > 0 {
            let n = left.min(per_process);
            let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
            cmd.args(["hold", "--addr", &target.addr, "--token", &target.client_token]).args([
                "--count",
                &n.to_string(),
                "--first",
                &(self.held + count - left).to_string(),
            ]);
            if self.counting {
                cmd.arg("--counting");
            }
            let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn()?;
            let stdout = child.stdout.take().context("holder stdout")?;
            let stdin = child.stdin.take();
            self.children.push(Holder { child, stdin, lines: BufReader::new(stdout).lines() });
            left -= n;
        }
        let mut asked = count;
        for holder in &mut self.children[first_new..] {
            let n = asked.min(per_process);
            asked -= n;
            let line = tokio::time::timeout(Duration::from_secs(180), holder.lines.next_line())
                .await
                .context("a holder did not finish opening within 180 s")??
                .unwrap_or_default();
            let mut parts = line.splitn(4, ' ');
            let (Some("ready"), Some(ok)) = (parts.next(), parts.next()) else {
                bail!("a holder said {line:?}");
            };
            let ok: usize = ok.parse()?;
            self.held += ok;
            let error = parts.nth(1).unwrap_or_default();
            if ok < n && error.contains("too-many-streams") {
                self.refused_at_limit.get_or_insert_with(|| error.to_owned());
            } else if ok < n {
                bail!("a holder opened {ok} of {n} subscriptions: {error}");
            }
        }
        Ok(())
    }

    /// The children's pids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(|h| h.child.id()).collect()
    }

    /// What the subscriptions received so far, over all children (`--counting` only).
    pub async fn counts(&mut self) -> anyhow::Result<Counts> {
        let mut total = Counts::default();
        for holder in &mut self.children {
            holder.stdin.as_mut().context("holder stdin")?.write_all(b"count\n").await?;
        }
        for holder in &mut self.children {
            let line = tokio::time::timeout(Duration::from_secs(30), holder.lines.next_line())
                .await
                .context("a holder did not answer `count` within 30 s")??
                .context("a holder exited")?;
            total.add(&Counts::parse(&line)?);
        }
        Ok(total)
    }

    pub async fn close(self) {
        for mut h in self.children {
            drop(h.stdin.take());
            let _ = tokio::time::timeout(Duration::from_secs(10), h.child.wait()).await;
        }
    }
}

/// One repetition against the bridge `pid` at `target`, which must have no
/// other subscribers.
pub async fn measure(
    target: &Target,
    pid: u32,
    counts: &[usize],
    relay_receivers: usize,
) -> anyhow::Result<Vec<Figure>> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = settled_rss(pid).await?;
    // Anonymous (heap, stacks) versus file-backed (the binary's code and the
    // shared libraries, shared with the page cache), to say where idle RSS goes.
    let (anon, file) = (status_bytes(pid, "RssAnon")?, status_bytes(pid, "RssFile")?);
    let mut figures = vec![Figure::new("idle RSS", idle as f64 / 1e6, "MB").goal(Goal::AtMost(10.0)).note(format!(
        "{:.1} MB anonymous (heap, stacks) + {:.1} MB file-backed (code, libraries)",
        anon as f64 / 1e6,
        file as f64 / 1e6
    ))];
    let (limit, open_idle) = fds(pid)?;
    let cap = limit.saturating_sub(open_idle + FD_HEADROOM);
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    let mut holders = Holders::new(false);
    let result = async {
        for asked in counts {
            let n = asked.min(cap);
            if n > holders.held && holders.refused_at_limit.is_none() {
                holders.add(target, n - holders.held).await?;
            }
            let with = settled_rss(pid).await?;
            let (_, open) = fds(pid)?;
            let refused = holders.held < n;
            let n = holders.held;
            let capped = n < asked;
            let label = if capped { format!("{asked} subs asked, capped") } else { format!("{asked} subs") };
            let note = if refused {
                format!(
                    "{n} connected: the bridge refused the rest at its own limit of streams ({}); the bridge had {open} descriptors open",
                    holders.refused_at_limit.as_deref().unwrap_or_default()
                )
            } else if capped {
                format!(
                    "{n} connected: the bridge's open-file limit {limit} − {open_idle} descriptors open at idle − {FD_HEADROOM} kept free; the bridge had {open} open"
                )
            } else {
                format!("{n} connected; the bridge had {open} descriptors open")
            };
            figures.push(Figure::new(format!("RSS, {label}"), with as f64 / 1e6, "MB").note(note));
            let mut per =
                Figure::new(format!("per idle sub, {label}"), with.saturating_sub(idle) as f64 / n as f64 / 1e3, "KB")
                    .goal(Goal::AtMost(8.0));
            per.vs_relay = Some(relay::per_receiver_name(relay_receivers));
            figures.push(per);
        }
        anyhow::Ok(())
    }
    .await;
    holders.close().await;
    result.map(|()| figures)
}
