//! The SSE stream: framing, ids, order, filters, headers, keepalive, resume.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn runtime_events_reach_two_subscribers_in_order_with_the_same_ids() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let mut one = app.events("").await;
    let mut two = app.events("").await;
    for i in 0..20 {
        rt.emit("stream_delta", "agent-1", "conv-1", json!({"delta": {"i": i}}));
    }
    let (mut ids_one, mut ids_two) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let (a, b) = (one.next().await, two.next().await);
        assert_eq!((a.event.as_str(), a.data["delta"]["i"].as_i64()), ("stream_delta", Some(i)));
        assert_eq!(b.data["delta"]["i"], i);
        ids_one.push(a.id);
        ids_two.push(b.id);
    }
    assert_eq!(ids_one, ids_two);
    let seqs: Vec<u64> = ids_one.iter().map(|id| seq_of(id).1).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive ids: {seqs:?}");
}

#[tokio::test]
async fn event_data_is_the_runtime_frame_plus_runtime_id() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let mut sse = app.events("").await;
    rt.emit("turn_finished", "agent-1", "conv-1", json!({"stop_reason": "end_turn", "odd": {"x": [null]}}));
    let e = sse.next().await;
    assert_eq!(e.event, "turn_finished");
    assert_eq!(e.data["runtime_id"], "dev-a");
    assert_eq!(e.data["stop_reason"], "end_turn");
    assert_eq!(e.data["odd"], json!({"x": [null]}));
    assert_eq!(e.data["event_seq"], 1);
    assert_eq!(e.data["runtime"]["agent_id"], "agent-1");
    assert!(e.data["idempotency_key"].as_str().unwrap().starts_with("turn_finished:1:"));
}

#[tokio::test]
async fn filters_select_by_type_agent_conversation_and_runtime() {
    let app = spawn_app().await;
    let a = app.runtime("dev-a").await;
    let b = app.runtime("dev-b").await;
    let mut by_type = app.events("?types=turn_finished,%20update_queue").await;
    let mut by_agent = app.events("?agent_id=agent-2").await;
    let mut by_conv = app.events("?conversation_id=conv-2&types=stream_delta").await;
    let mut by_runtime = app.events("?runtime=dev-b").await;
    let mut all = app.events("").await;
    a.emit("stream_delta", "agent-1", "conv-1", json!({"n": 1}));
    a.emit("turn_finished", "agent-1", "conv-1", json!({"n": 2}));
    a.emit("stream_delta", "agent-2", "conv-2", json!({"n": 3}));
    // Two runtimes' events have no mutual order: let a's land before b's.
    while all.next().await.data["n"] != 3 {}
    b.emit("update_queue", "agent-2", "conv-3", json!({"n": 4}));
    let n = |e: SseEvent| e.data["n"].as_i64().unwrap();
    assert_eq!((n(by_type.next().await), n(by_type.next().await)), (2, 4));
    assert_eq!((n(by_agent.next().await), n(by_agent.next().await)), (3, 4));
    assert_eq!(n(by_conv.next().await), 3);
    assert_eq!(n(by_runtime.next().await), 4);
    // Nothing else is queued for the narrow filters: a later matching event comes next.
    b.emit("stream_delta", "agent-9", "conv-2", json!({"n": 5}));
    assert_eq!(n(by_conv.next().await), 5);
    b.emit("turn_finished", "agent-9", "conv-9", json!({"n": 6}));
    assert_eq!(n(by_type.next().await), 6);
}

#[tokio::test]
async fn the_stream_has_sse_headers_and_sends_its_first_bytes_at_once() {
    let app = spawn_app().await;
    let mut res = app.get("/events").await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let first = tokio::time::timeout(WAIT, res.chunk()).await.expect("first bytes at once").unwrap().unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    assert!(text.starts_with("retry: "), "{text:?}");
}

#[tokio::test]
async fn an_idle_stream_gets_keepalive_comments() {
    let app = spawn_app_with(|c| c.keepalive = Duration::from_millis(50)).await;
    let mut res = app.get("/events").await;
    let mut seen = String::new();
    while !seen.contains(": keepalive\n\n") {
        let chunk = tokio::time::timeout(WAIT, res.chunk()).await.expect("keepalive in time").unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn resume_with_last_event_id_replays_exactly_the_missed_events() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let mut sse = app.events("?types=e").await;
    for i in 0..3 {
        rt.emit("e", "a", "c", json!({"i": i}));
    }
    let _ = sse.next().await;
    let second = sse.next().await;
    drop(sse);
    for i in 3..5 {
        rt.emit("e", "a", "c", json!({"i": i}));
    }
    let mut wait_for_last = app.events_with("?types=e", Some(&second.id)).await;
    let got: Vec<i64> = next_is(&mut wait_for_last, 3).await;
    assert_eq!(got, [2, 3, 4]);
    // The query forms work too, and the header wins over them.
    let mut by_query = app.events(&format!("?types=e&lastEventId={}", second.id)).await;
    assert_eq!(next_is(&mut by_query, 3).await, [2, 3, 4]);
    let mut both =
        app.events_with(&format!("?types=e&last_event_id={}-0", seq_of(&second.id).0), Some(&second.id)).await;
    assert_eq!(next_is(&mut both, 3).await, [2, 3, 4]);
}

/// The `i` field of the next `n` events.
async fn next_is(sse: &mut Sse, n: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sse.next().await.data["i"].as_i64().unwrap());
    }
    out
}

#[tokio::test]
async fn a_cursor_that_cannot_be_honoured_gets_an_explicit_reset() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    for (cursor, reason) in [("garbage", "malformed_cursor"), ("0123456789-1", "other_epoch")] {
        let mut sse = app.events_with("", Some(cursor)).await;
        let reset = sse.next().await;
        assert_eq!(reset.event, "reset");
        assert_eq!(reset.data["reason"], reason);
        assert_eq!(reset.data["cursor"], cursor);
        assert_eq!(reset.id, reset.data["resume_from"].as_str().unwrap());
        rt.emit("after", "a", "c", json!({}));
        assert_eq!(sse.next().await.event, "after", "the stream continues live");
    }
}

#[tokio::test]
async fn a_stalled_subscriber_blocks_nobody_and_is_told_what_it_missed() {
    let app = spawn_app_with(|c| c.replay_events = 100).await;
    let rt = app.runtime("dev-a").await;
    // Opened, then never read while ~10 MB pass: far more than socket buffers hold.
    let mut stalled = app.events("?types=big").await;
    let mut fast = app.events("?types=big").await;
    let pad = "x".repeat(16 * 1024);
    for i in 0..600 {
        rt.emit("big", "a", "c", json!({"i": i, "pad": pad}));
        assert_eq!(fast.next().await.data["i"], i, "the fast subscriber gets every event, in order");
    }
    // The stalled one reads what its connection buffered, then learns of the gap.
    let mut last = -1;
    let lagged = loop {
        let e = stalled.next().await;
        if e.event == "lagged" {
            break e;
        }
        let i = e.data["i"].as_i64().unwrap();
        assert_eq!(i, last + 1, "no gap before the lagged signal");
        last = i;
    };
    let missed = lagged.data["missed"].as_u64().unwrap();
    assert!(missed > 0);
    let next = stalled.next().await;
    assert_eq!(next.data["i"].as_u64().unwrap(), (last + 1) as u64 + missed, "it resumes right after the gap");
    assert_eq!(lagged.id, lagged.data["resume_from"].as_str().unwrap());
}

#[tokio::test]
async fn a_maximum_stream_duration_ends_streams_cleanly_for_a_resume() {
    let app = spawn_app_with(|c| c.max_stream_duration = Some(Duration::from_millis(200))).await;
    let rt = app.runtime("dev-a").await;
    let mut sse = app.events("?types=e").await;
    rt.emit("e", "a", "c", json!({"i": 0}));
    let first = sse.next().await;
    assert!(sse.ends().await, "the stream ends by itself");
    rt.emit("e", "a", "c", json!({"i": 1}));
    let mut resumed = app.events_with("?types=e", Some(&first.id)).await;
    assert_eq!(resumed.next().await.data["i"], 1, "nothing lost across the end");
}

#[tokio::test]
async fn a_subscriber_resuming_over_large_events_gets_every_event_once_in_order() {
    let app = spawn_app().await;
    let rt = app.runtime("dev-a").await;
    let mut watcher = app.events("?types=e").await;
    let mut resumer = app.events("?types=e").await;
    rt.emit("e", "a", "c", json!({"i": 0}));
    let cursor = resumer.next().await.id;
    drop(resumer);
    // 20 events of 256 KiB, each followed by 40 small ones: batches both
    // fill up to their byte bound and stop before a large event.
    let (large, small) = ("L".repeat(256 * 1024), "s".repeat(1024));
    let mut n = 0;
    for _ in 0..20 {
        n += 1;
        rt.emit("e", "a", "c", json!({"i": n, "pad": large}));
        for _ in 0..40 {
            n += 1;
            rt.emit("e", "a", "c", json!({"i": n, "pad": small}));
        }
    }
    while watcher.next().await.data["i"] != n {}
    let mut resumed = app.events_with("?types=e", Some(&cursor)).await;
    for i in 1..=n {
        let e = resumed.next().await;
        assert_eq!(e.data["i"], i, "event {i} of {n}, once and in order");
    }
    rt.emit("e", "a", "c", json!({"i": n + 1}));
    assert_eq!(resumed.next().await.data["i"], n + 1, "then live, with nothing repeated");
}

#[tokio::test]
async fn a_types_filter_over_its_limits_is_refused_with_the_limit() {
    let app = spawn_app().await;
    let many = (0..=MAX_FILTER_TYPES).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
    let long = "t".repeat(MAX_FILTER_TYPE_LEN + 1);
    let wide = vec!["t".repeat(MAX_FILTER_TYPE_LEN); 40].join(",");
    for (query, says) in [(many, "at most 64 types"), (long, "at most 128 characters"), (wide, "at most 4096 bytes")] {
        let res = app.get(&format!("/events?types={query}")).await;
        let problem = assert_problem(res, 400).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{detail:?} says {says:?}");
    }
    let at_limits = (0..MAX_FILTER_TYPES).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
    let mut sse = app.events(&format!("?types={at_limits}")).await;
    let rt = app.runtime("dev-a").await;
    rt.emit("t63", "a", "c", json!({}));
    assert_eq!(sse.next().await.event, "t63", "a filter at the limits still works");
}

/// `GET /events`' `types` limits (as documented in docs/events.md).
const MAX_FILTER_TYPES: usize = 64;
const MAX_FILTER_TYPE_LEN: usize = 128;
