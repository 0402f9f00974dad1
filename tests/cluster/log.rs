//! The shared log keeps its limits (count, bytes, age) and its byte count
//! matches what it holds: trimming is batched, so these check the bounds
//! and the bookkeeping that the batching relies on.

use serde_json::json;

use crate::harness::{Cluster, NODE_TTL, WAIT};

/// A lease long enough that no renewal (which also trims) comes during a
/// test: what is checked is the trimming on appends.
const QUIET: &str = "60s";

/// What the log holds, read from Redis: entries, their sizes as the SIZES
/// list says and as the entries say, the byte counter, and the seqs.
#[derive(Debug)]
struct Held {
    len: i64,
    sizes_len: i64,
    sizes_sum: i64,
    entries_sum: i64,
    bytes: i64,
    oldest: i64,
    seq: i64,
}

fn held(cluster: &Cluster) -> Held {
    let (events, sizes, meta) = (cluster.key("events"), cluster.key("sizes"), cluster.key("meta"));
    let int = |line: String| -> i64 {
        let reply = cluster.redis.command(&line);
        reply.trim().strip_prefix(':').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}: {reply}"))
    };
    let bulk = |line: String| -> i64 {
        let reply = cluster.redis.command(&line);
        reply.lines().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}: {reply}"))
    };
    Held {
        len: int(format!("XLEN {events}")),
        sizes_len: int(format!("LLEN {sizes}")),
        sizes_sum: int(format!(
            "EVAL \"local s = 0 for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do s = s + tonumber(v) end return s\" 1 {sizes}"
        )),
        entries_sum: int(format!(
            "EVAL \"local s = 0 for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do for j = 1, #e[2], 2 do if e[2][j] == 'd' then s = s + #e[2][j + 1] end end end return s\" 1 {events}"
        )),
        bytes: bulk(format!("HGET {meta} bytes")),
        oldest: int(format!(
            "EVAL \"return tonumber(string.match(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1], '^(%d+)-'))\" 1 {events}"
        )),
        seq: bulk(format!("HGET {meta} seq")),
    }
}

/// The bookkeeping every trim must leave right.
fn consistent(h: &Held) {
    assert_eq!(h.sizes_len, h.len, "one size per entry: {h:?}");
    assert_eq!(h.sizes_sum, h.entries_sum, "the sizes are the entries': {h:?}");
    assert_eq!(h.bytes, h.entries_sum, "the byte counter is what the log holds: {h:?}");
    assert_eq!(h.oldest, h.seq - h.len + 1, "the log is the newest seqs, without gaps: {h:?}");
}

async fn publish(cluster: &Cluster, n: usize) {
    let mut on2 = cluster.events(2, "?types=marker").await;
    let rt = cluster.runtime(1, "dev-log").await;
    for i in 0..n {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i, "pad": "x".repeat(i % 50)}));
    }
    on2.next_matching("the last marker", |e| e.data["i"] == n - 1).await;
}

#[tokio::test]
async fn the_shared_log_keeps_at_most_its_event_count_plus_a_trim_batch() {
    let Some(cluster) = Cluster::start_args("log_count", 2, QUIET, &["--replay-events", "100"]) else { return };
    publish(&cluster, 1_000).await;
    let h = held(&cluster);
    assert!((100..=100 + 64).contains(&h.len), "100 events and at most 64 more: {h:?}");
    assert!(h.seq > 1_000, "every marker was appended: {h:?}");
    consistent(&h);
}

#[tokio::test]
async fn the_shared_log_keeps_at_most_its_bytes_plus_a_sixty_fourth() {
    let Some(cluster) = Cluster::start_args("log_bytes", 2, QUIET, &["--replay-bytes", "6400"]) else { return };
    publish(&cluster, 1_000).await;
    let h = held(&cluster);
    assert!(h.bytes <= 6_400 + 100, "6,400 bytes and at most a 64th more: {h:?}");
    assert!(h.len > 10 && h.len < 200, "trimmed by bytes, not emptied: {h:?}");
    consistent(&h);
}

#[tokio::test]
async fn events_older_than_the_age_limit_leave_the_shared_log_on_a_lease_renewal() {
    let Some(cluster) = Cluster::start_args("log_age", 2, NODE_TTL, &["--replay-max-age", "1s"]) else { return };
    publish(&cluster, 200).await;
    let full = held(&cluster);
    assert!(full.len > 1, "something to age out: {full:?}");
    // Renewals come every third of the 1 s lease; there is no event to await.
    let deadline = std::time::Instant::now() + WAIT;
    let h = loop {
        let h = held(&cluster);
        if h.len == 1 || std::time::Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(h.len, 1, "all but the newest entry aged out: {h:?}");
    consistent(&h);
}
