//! `bench hold`: a child process holding idle SSE subscriptions open, so the
//! memory scenario can reach more subscribers than one process's open-file
//! limit allows. Each connection binds a source address in 127.0.0.2.., which
//! keeps clear of the ephemeral-port limit of a single source address. With
//! `--counting` (the soak run) each subscription is read, and its events are
//! counted by their sequence number: received, new, repeated, reported missed.

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures_util::StreamExt;
use memchr::memmem::Finder;

use crate::deliver::stamp_of;
use crate::sse::{self, SseStream};
use crate::target::{Target, raise_nofile_limit};

/// Connections per child process (under the 20,000 open-file hard limit,
/// with room to spare).
pub const PER_PROCESS: usize = 9_000;

/// Connections per counting child. Reading costs CPU (the fan-out run's
/// harness spends ~60 ns per 200-byte event), and a child reads on one
/// thread: 10,000 subscribers at 1,000 events/s in one child would need about
/// half a core of one thread; four children of 2,500 let the kernel spread
/// them over the cores.
pub const COUNTING_PER_PROCESS: usize = 2_500;

/// Bytes per read of a counting subscription (10,000 of them: 160 MB).
const COUNTING_READ: usize = 16 * 1024;

/// Connections per source address.
const PER_SOURCE: usize = 5_000;

/// Handshakes in flight per child (the bridge's listen backlog is 1,024).
const PARALLEL: usize = 128;

/// The source address of the `i`th held connection over all children.
pub fn source(i: usize) -> IpAddr {
    let k = i / PER_SOURCE;
    IpAddr::V4(Ipv4Addr::new(127, 0, (k / 250) as u8, (2 + k % 250) as u8))
}

/// Opens `count` subscriptions, prints `ready <opened> <failed> [first error]`,
/// then holds them until stdin closes (with `counting`: reads them, and
/// answers each `count` line on stdin with a `counts …` line).
pub fn hold(addr: String, token: String, count: usize, first: usize, counting: bool) -> anyhow::Result<()> {
    raise_nofile_limit();
    let target = Target {
        addr,
        base: String::new(),
        ws_url: String::new(),
        runtime_token: String::new(),
        client_token: token,
        register: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if counting {
        return rt.block_on(count_events(&target, count, first));
    }
    let (held, failed, first_error) = rt.block_on(async {
        let mut opened = futures_util::stream::iter(0..count)
            .map(|i| {
                let target = &target;
                async move { open_retrying(target, source(first + i)).await }
            })
            .buffer_unordered(PARALLEL);
        let mut held = Vec::with_capacity(count);
        let (mut failed, mut first_error) = (0, None);
        while let Some(r) = opened.next().await {
            match r {
                Ok(s) => held.push(s.into_idle()),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        (held, failed, first_error)
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {} {failed} {}", held.len(), first_error.unwrap_or_default().replace('\n', " "))?;
    out.flush()?;
    drop(out);
    // Hold until the parent closes our stdin.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    drop(held);
    Ok(())
}

/// Attempts per subscription.
const ATTEMPTS: usize = 3;

/// Opens a subscription, again (at most [`ATTEMPTS`] in all) when the bridge
/// closed the connection before answering, as `EventSource` would. On two
/// cores shared with the bridge, a holder opening thousands at once can
/// leave a connected socket without its request for over ten seconds (seen:
/// `connect` done after 11 s, or the request written 11 s after it), and
/// the bridge closes such connections at LETTA_BRIDGE_HEADER_TIMEOUT (10 s).
async fn open_retrying(target: &Target, source: IpAddr) -> anyhow::Result<SseStream> {
    let mut attempt = 1;
    loop {
        match sse::open(target, Some(source), "bench").await {
            Err(e) if attempt < ATTEMPTS && format!("{e:#}").contains("closed before the response head") => {
                attempt += 1
            }
            other => return other,
        }
    }
}

/// What counting subscriptions received, summed over them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// `bench` events received.
    pub events: u64,
    /// Of those, each subscriber's first receipt of a sequence number.
    pub unique: u64,
    /// Of those, sequence numbers a subscriber had already received.
    pub duplicates: u64,
    /// Events `lagged` notices said were missed.
    pub missed: u64,
    /// `lagged` notices.
    pub lags: u64,
    /// Subscriptions that ended or failed.
    pub ended: u64,
    /// The first reason one ended.
    pub first_error: String,
}

impl Counts {
    fn line(&self) -> String {
        format!(
            "counts {} {} {} {} {} {} {}",
            self.events,
            self.unique,
            self.duplicates,
            self.missed,
            self.lags,
            self.ended,
            self.first_error.replace('\n', " ")
        )
    }

    pub fn parse(line: &str) -> anyhow::Result<Counts> {
        let rest = line.strip_prefix("counts ").with_context(|| format!("a holder said {line:?}"))?;
        let mut parts = rest.splitn(7, ' ');
        let mut next = || -> anyhow::Result<u64> { Ok(parts.next().context("short counts line")?.parse()?) };
        let (events, unique, duplicates, missed, lags, ended) = (next()?, next()?, next()?, next()?, next()?, next()?);
        let first_error = parts.next().unwrap_or_default().to_owned();
        Ok(Counts { events, unique, duplicates, missed, lags, ended, first_error })
    }

    pub fn add(&mut self, other: &Counts) {
        self.events += other.events;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.missed += other.missed;
        self.lags += other.lags;
        self.ended += other.ended;
        if self.first_error.is_empty() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// The counters of a counting child, added to by each subscription after each read.
#[derive(Default)]
struct Totals {
    events: AtomicU64,
    unique: AtomicU64,
    duplicates: AtomicU64,
    missed: AtomicU64,
    lags: AtomicU64,
    ended: AtomicU64,
    first_error: Mutex<String>,
}

impl Totals {
    fn snapshot(&self) -> Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            events: get(&self.events),
            unique: get(&self.unique),
            duplicates: get(&self.duplicates),
            missed: get(&self.missed),
            lags: get(&self.lags),
            ended: get(&self.ended),
            first_error: self.first_error.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }
}

/// `--counting`: opens the subscriptions, reads and counts them, and answers
/// `count` lines on stdin until it closes.
async fn count_events(target: &Target, count: usize, first: usize) -> anyhow::Result<()> {
    let opened: Vec<anyhow::Result<SseStream>> = futures_util::stream::iter(0..count)
        .map(|i| async move { sse::open(target, Some(source(first + i)), "bench").await })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let totals = Arc::new(Totals::default());
    let (mut held, mut failed, mut first_error) = (0, 0, None);
    for r in opened {
        match r {
            Ok(s) => {
                held += 1;
                tokio::spawn(tally(s, totals.clone()));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    println!("ready {held} {failed} {}", first_error.unwrap_or_default().replace('\n', " "));
    // stdin is read on a thread of its own; its lines come through a small channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        if line.trim() == "count" {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", totals.snapshot().line())?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Reads one subscription until it ends, counting its events into `totals`.
async fn tally(mut stream: SseStream, totals: Arc<Totals>) {
    let n_at = Finder::new(b"\"n\":");
    let missed_at = Finder::new(b"\"missed\":");
    let mut raw = vec![0u8; COUNTING_READ];
    let mut last = 0u64;
    loop {
        let mut c = Counts::default();
        let read = stream
            .read_blocks(&mut raw, |block| match sse::line(block, "event") {
                Some(b"bench") => {
                    c.events += 1;
                    match stamp_of(block, &n_at) {
                        Some(n) if n > last => {
                            last = n;
                            c.unique += 1;
                        }
                        Some(_) => c.duplicates += 1,
                        None => {}
                    }
                }
                Some(b"lagged") => {
                    c.lags += 1;
                    c.missed += stamp_of(block, &missed_at).unwrap_or(0);
                }
                _ => {}
            })
            .await;
        for (total, add) in [
            (&totals.events, c.events),
            (&totals.unique, c.unique),
            (&totals.duplicates, c.duplicates),
            (&totals.missed, c.missed),
            (&totals.lags, c.lags),
        ] {
            if add > 0 {
                total.fetch_add(add, Ordering::Relaxed);
            }
        }
        if let Err(e) = read {
            totals.ended.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = totals.first_error.lock()
                && first.is_empty()
            {
                *first = format!("{e:#}");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_round_trip() {
        let c = Counts { events: 5, unique: 4, duplicates: 1, missed: 7, lags: 1, ended: 2, first_error: "a b".into() };
        assert_eq!(Counts::parse(&c.line()).unwrap(), c);
        let mut sum = c.clone();
        sum.add(&c);
        assert_eq!((sum.events, sum.first_error.as_str()), (10, "a b"));
    }
}
