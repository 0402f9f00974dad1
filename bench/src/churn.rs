//! Churn (issue 14): subscribers whose connections are cut every ~15 s for
//! ~2 s, each coming back with `Last-Event-ID` set to the last id it
//! received, while the fake runtime publishes numbered, stamped events at a
//! low steady rate. Each subscriber keeps which sequence numbers it got, so
//! the run reports the share delivered, the duplicates, and publish → receive
//! latency (all events, and those published while the subscriber was connected).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use memchr::memmem::Finder;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::deliver::stamp_of;
use crate::events::OPEN_PARALLEL;
use crate::figure::{Figure, Goal};
use crate::options::Args;
use crate::runtime;
use crate::sse::{self, SseStream};
use crate::stats::{Hist, now_ns};
use crate::target::Target;

/// How long a subscriber stays connected: uniform in this range (s).
const CONNECTED: (f64, f64) = (12.0, 18.0);

/// How long a cut lasts: uniform in this range (s).
const CUT: (f64, f64) = (1.5, 2.5);

/// After the last event is published: how long a subscriber may wait for
/// it before the rest count as lost.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Bytes per read.
const READ: usize = 16 * 1024;

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    /// `got[n]`: sequence number n arrived.
    got: Vec<bool>,
    unique: u64,
    duplicates: u64,
    /// Publish → receive, every first receipt.
    all: Hist,
    /// The same, for events published while this subscriber was connected.
    live: Hist,
    reconnects: u64,
    /// `reset` and `lagged` notices.
    resets: u64,
    lags: u64,
    /// Connections that failed to open (retried).
    failed_opens: u64,
    first_error: Option<String>,
    /// Each resume: when the connection was cut, when it was open again, and
    /// the `Last-Event-ID` it sent (to explain a loss).
    resumes: Vec<(u64, u64, Option<String>)>,
}

/// At most this many lost events are described on stderr.
const EXPLAIN: usize = 20;

/// A small xorshift generator, so that each subscriber's cuts fall differently.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, (lo, hi): (f64, f64)) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_secs_f64(lo + (hi - lo) * (self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// One churn run against `target`.
pub async fn churn(target: &Target, args: &Args) -> anyhow::Result<Vec<Figure>> {
    let (subs, rate, span) = (args.churn_subscribers, args.churn_rate, args.churn_duration);
    let ws = runtime::connect(target, "bench", Duration::from_secs(10)).await?;
    let (mut sink, stream) = ws.split();
    let drainer = tokio::spawn(runtime::drain(stream));
    let streams = sse::open_many(target, subs, OPEN_PARALLEL, |_| None).await?;
    // The number of the last event, once all are published.
    let (done_tx, done_rx) = watch::channel(None::<u64>);
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            tokio::spawn(subscriber(
                target.clone(),
                s,
                done_rx.clone(),
                Rng(0x9E37_79B9_7F4A_7C15 ^ (now_ns() + i as u64 * 7919)),
            ))
        })
        .collect();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let mut n = 0u64;
    let mut stamps = vec![0];
    let published = async {
        while started.elapsed() < span {
            tick.tick().await;
            n += 1;
            stamps.push(now_ns());
            sink.send(Message::text(runtime::numbered(n, stamps[n as usize], args.size))).await?;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = done_tx.send(Some(n));
    let mut total = Seen::default();
    let mut explained = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let s = t.await?;
        explained += explain(i, &s, &stamps, stamps[1], EXPLAIN - explained.min(EXPLAIN));
        total.unique += s.unique;
        total.duplicates += s.duplicates;
        total.all.merge(&s.all);
        total.live.merge(&s.live);
        total.reconnects += s.reconnects;
        total.resets += s.resets;
        total.lags += s.lags;
        total.failed_opens += s.failed_opens;
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
    }
    let _ = sink.close().await;
    drainer.abort();
    published?;
    Ok(figures(args, n, &total))
}

/// Says on stderr which events subscriber `i` lost, when they were
/// published and what its resumes around them were (at most `limit` lines);
/// returns the lines written.
fn explain(i: usize, s: &Seen, stamps: &[u64], start: u64, limit: usize) -> usize {
    let secs = |ns: u64| ns.saturating_sub(start) as f64 / 1e9;
    let mut lines = 0;
    for (n, &stamp) in stamps.iter().enumerate().skip(1) {
        if lines >= limit {
            break;
        }
        if s.got.get(n).copied().unwrap_or(false) {
            continue;
        }
        let around: Vec<String> = s
            .resumes
            .iter()
            .filter(|(cut, back, _)| cut.saturating_sub(5_000_000_000) <= stamp && stamp <= back + 5_000_000_000)
            .map(|(cut, back, id)| format!("cut {:.3} s, back {:.3} s after {id:?}", secs(*cut), secs(*back)))
            .collect();
        eprintln!(
            "   subscriber {i} lost event {n} (published {:.3} s in; {} resumes in all; near it: {})",
            secs(stamp),
            s.resumes.len(),
            if around.is_empty() { "none".to_owned() } else { around.join("; ") }
        );
        lines += 1;
    }
    lines
}

/// One subscriber: reads, is cut, resumes, until it has the last event (or
/// gives up [`CATCH_UP`] after it was published).
async fn subscriber(target: Target, first: SseStream, mut done: watch::Receiver<Option<u64>>, mut rng: Rng) -> Seen {
    let (n_at, t_at) = (Finder::new(b"\"n\":"), Finder::new(b"\"t\":"));
    let mut seen = Seen::default();
    let mut raw = vec![0u8; READ];
    let mut last_id: Option<String> = None;
    // First cut at a random point of the first period, so that cuts are spread.
    let mut stream = Some((first, now_ns()));
    let mut cut_at = Instant::now() + rng.uniform((0.0, CONNECTED.1));
    let mut give_up: Option<Instant> = None;
    loop {
        let last = *done.borrow();
        if let Some(last) = last {
            if seen.got.get(last as usize).copied().unwrap_or(false) || last == 0 {
                return seen;
            }
            let at = *give_up.get_or_insert_with(|| Instant::now() + CATCH_UP);
            if Instant::now() >= at {
                return seen;
            }
        }
        let Some((s, connected_at)) = stream.as_mut() else {
            // Cut: wait, then resume after the last id received.
            let cut_ns = now_ns();
            let back = Instant::now() + rng.uniform(CUT);
            tokio::select! {
                _ = tokio::time::sleep_until(back) => {}
                _ = done.changed() => {}
            }
            if Instant::now() < back {
                tokio::time::sleep_until(back).await;
            }
            match sse::open_from(&target, None, "bench", last_id.as_deref()).await {
                Ok(s) => {
                    seen.reconnects += 1;
                    seen.resumes.push((cut_ns, now_ns(), last_id.clone()));
                    stream = Some((s, now_ns()));
                    cut_at = Instant::now() + rng.uniform(CONNECTED);
                }
                Err(e) => {
                    seen.failed_opens += 1;
                    seen.first_error.get_or_insert_with(|| format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            continue;
        };
        let connected_at = *connected_at;
        let deadline = match give_up {
            Some(g) => g.min(cut_at),
            None => cut_at,
        };
        let read = tokio::select! {
            r = s.read_blocks(&mut raw, |block| {
                let now = now_ns();
                if let Some(id) = sse::line(block, "id") {
                    last_id = Some(String::from_utf8_lossy(id).into_owned());
                }
                match sse::line(block, "event") {
                    Some(b"bench") => {
                        let (Some(n), Some(t)) = (stamp_of(block, &n_at), stamp_of(block, &t_at)) else { return };
                        let n = n as usize;
                        if seen.got.len() <= n {
                            seen.got.resize(n + 1, false);
                        }
                        if seen.got[n] {
                            seen.duplicates += 1;
                            return;
                        }
                        seen.got[n] = true;
                        seen.unique += 1;
                        seen.all.record(now.saturating_sub(t));
                        if t >= connected_at {
                            seen.live.record(now.saturating_sub(t));
                        }
                    }
                    Some(b"reset") => seen.resets += 1,
                    Some(b"lagged") => seen.lags += 1,
                    _ => {}
                }
            }) => Some(r),
            _ = tokio::time::sleep_until(deadline) => None,
            _ = done.changed() => continue,
        };
        match read {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                seen.first_error.get_or_insert_with(|| format!("{e:#}"));
                stream = None;
            }
            // The cut (dropping the socket closes the connection).
            None if Instant::now() >= cut_at => stream = None,
            None => {}
        }
    }
}

fn figures(args: &Args, published: u64, s: &Seen) -> Vec<Figure> {
    let subs = args.churn_subscribers as u64;
    let name = format!("churn, {subs} subs, {}/s, {} s", args.churn_rate, args.churn_duration.as_secs_f64().round());
    let expected = published * subs;
    let [p50, p99, _] = s.all.percentiles();
    let [live50, live99, _] = s.live.percentiles();
    vec![
        Figure::new(format!("{name}: delivery"), s.unique as f64 / expected.max(1) as f64 * 100.0, "%")
            .goal(Goal::AtLeast(100.0))
            .note(format!(
                "{} of {expected} (published × subscribers); {} lost",
                s.unique,
                expected.saturating_sub(s.unique)
            )),
        Figure::new(format!("{name}: duplicates"), s.duplicates as f64, "events").goal(Goal::AtMost(0.0)),
        Figure::new(format!("{name}: publish→receive p50"), p50, "µs"),
        Figure::new(format!("{name}: publish→receive p99"), p99, "µs")
            .note("events published during a cut arrive on resume, up to ~2.5 s late"),
        Figure::new(format!("{name}: live p50"), live50, "µs")
            .note("events published while the subscriber was connected"),
        Figure::new(format!("{name}: live p99"), live99, "µs"),
        Figure::new(format!("{name}: resumes"), s.reconnects as f64, "resumes").note(format!(
            "{} reset and {} lagged notices; {} failed opens{}",
            s.resets,
            s.lags,
            s.failed_opens,
            s.first_error.as_deref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
        )),
    ]
}
