//! Redis going away: a restart without its data resets every stream; a log
//! that lost its newest events (a failover to a replica that lagged) takes
//! a new epoch rather than give their ids to new events; a short outage
//! answers 503 and loses nothing; a long one fences.

use std::time::Duration;

use letta_bridge_testkit::SseEvent;
use serde_json::{Value, json};

use crate::harness::{Cluster, WAIT, authed, input};

#[tokio::test]
async fn redis_restarted_without_its_data_resets_every_stream_then_delivers_exactly_once() {
    let Some(mut cluster) = Cluster::start("redis_lost", 3) else { return };
    let mut on2 = cluster.events(2, "?types=marker,reset").await;
    let mut on3 = cluster.events(3, "?types=marker,reset").await;
    let rt = cluster.runtime(1, "dev-e").await;
    rt.emit("marker", "agent-1", "conv-1", json!({"i": 0}));
    let before = on2.next_of("marker").await.id;
    on3.next_of("marker").await;
    cluster.redis.restart_empty();
    for sse in [&mut on2, &mut on3] {
        let reset = sse.next_of("reset").await;
        assert_eq!(reset.data["reason"], "other_epoch");
        assert_ne!(reset.id.split('-').next(), before.split('-').next(), "a new epoch");
    }
    for i in 1..=5 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    for sse in [&mut on2, &mut on3] {
        let got: Vec<i64> = {
            let mut got = Vec::new();
            for _ in 1..=5 {
                got.push(sse.next_of("marker").await.data["i"].as_i64().unwrap());
            }
            got
        };
        assert_eq!(got, vec![1, 2, 3, 4, 5], "each event once, in order");
    }
    let reply: Value = cluster.at(2).post("/input?wait=true", &input("after")).await.json().await.unwrap();
    assert_eq!(reply["accepted"], true, "the runtime is routable again: {reply}");
}

#[tokio::test]
async fn a_log_that_went_back_in_time_starts_a_new_epoch_rather_than_give_old_ids_new_content() {
    let Some(cluster) = Cluster::start("log_behind", 2) else { return };
    let mut on2 = cluster.events(2, "?types=marker,reset").await;
    let rt = cluster.runtime(1, "dev-b").await;
    for i in 0..3 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(on2.next_of("marker").await.id);
    }
    // What a failover to a replica that missed the newest writes looks like:
    // the log's counter is behind what the mirrors read.
    let answer = cluster.redis.command(&format!("HSET {} seq 1", cluster.key("meta")));
    assert!(answer.starts_with(':'), "{answer}");
    let reset = on2.next_of("reset").await;
    assert_eq!(reset.data["reason"], "other_epoch");
    rt.emit("marker", "agent-1", "conv-1", json!({"i": 3}));
    let after = on2.next_of("marker").await;
    assert_eq!(after.data["i"], 3);
    assert!(!ids.contains(&after.id), "no id is given to other content: {} in {ids:?}", after.id);
}

#[tokio::test]
async fn a_log_that_lost_its_newest_events_to_a_failover_takes_no_new_event_before_every_mirror_checked_it() {
    let Some(cluster) = Cluster::start("log_gated", 2) else { return };
    let mut streams = [cluster.events(1, "?types=marker,reset").await, cluster.events(2, "?types=marker,reset").await];
    let rt = cluster.runtime(1, "dev-g").await;
    for i in 0..3 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    let mut ids = Vec::new();
    for sse in &mut streams {
        for _ in 0..3 {
            ids.push(sse.next_of("marker").await.id);
        }
    }
    // What a promoted replica that missed the newest writes looks like: the
    // log is shorter than the mirrors read, and another Redis wrote it. New
    // events follow at once, before any mirror looked at the log again.
    let script =
        "\"redis.call('DEL', KEYS[1]); redis.call('HSET', KEYS[2], 'seq', 0, 'primary', 'elsewhere'); return 1\"";
    let answer = cluster.redis.command(&format!("EVAL {script} 2 {} {}", cluster.key("events"), cluster.key("meta")));
    assert!(answer.starts_with(":1"), "{answer}");
    for i in 3..6 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    for sse in &mut streams {
        let reset = sse.next_of("reset").await;
        assert_eq!(reset.data["reason"], "other_epoch");
        let got: Vec<SseEvent> =
            vec![sse.next_of("marker").await, sse.next_of("marker").await, sse.next_of("marker").await];
        let numbers: Vec<i64> = got.iter().map(|e| e.data["i"].as_i64().unwrap()).collect();
        assert_eq!(numbers, vec![3, 4, 5], "the new events, once, in order, after the reset");
        assert!(got.iter().all(|e| !ids.contains(&e.id)), "no id given to other content: {}", sse.summary());
    }
}

#[tokio::test]
async fn redis_stopped_for_three_seconds_answers_503_then_recovers_without_losing_an_event() {
    // A lease longer than the outage: no instance fences itself here.
    let Some(mut cluster) = Cluster::start_with("redis_outage", 2, "10s", true) else { return };
    let mut on2 = cluster.events(2, "?types=marker").await;
    let rt = cluster.runtime(1, "dev-o").await;
    rt.emit("marker", "agent-1", "conv-1", json!({"i": 0}));
    on2.next_of("marker").await;
    cluster.redis.kill();

    let (http, base) = (cluster.at(2).http.clone(), cluster.at(2).base_url());
    let url = |path: &str| format!("{base}{path}");
    let command = wait_for_status(|| authed(http.post(url("/input"))).json(&input("x")).send(), 503).await;
    assert_eq!(command.headers()["retry-after"], "2");
    let problem: Value = command.json().await.unwrap();
    assert_eq!(problem["type"], "urn:letta-bridge:engine-unavailable", "{problem}");
    let ticket = authed(http.post(url("/tickets"))).send().await.unwrap();
    assert_eq!(ticket.status(), 503);
    let keyed = authed(http.post(url("/input"))).header("Idempotency-Key", "k").json(&input("x")).send().await.unwrap();
    assert_eq!(keyed.status(), 503);
    assert_eq!(http.get(url("/readyz")).send().await.unwrap().status(), 503);

    for i in 1..=5 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    // The outage this test is about lasts three seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.redis.launch();
    let mut got = Vec::new();
    for _ in 1..=5 {
        got.push(on2.next_of("marker").await.data["i"].as_i64().unwrap());
    }
    assert_eq!(got, vec![1, 2, 3, 4, 5], "the events of the outage, once, in order");
    wait_for_status(|| http.get(url("/readyz")).send(), 200).await;
    let after = authed(http.post(url("/input"))).json(&input("after")).send().await.unwrap();
    assert_eq!(after.status(), 202);
}

#[tokio::test]
async fn an_instance_that_cannot_reach_redis_closes_its_runtime_sockets() {
    let Some(mut cluster) = Cluster::start("redis_fence", 1) else { return };
    let mut rt = cluster.runtime(1, "dev-f").await;
    cluster.redis.kill();
    let close = rt.closed().await;
    assert_eq!(close.map(|(code, _)| code), Some(1012), "fenced: the runtime reconnects elsewhere");
}

/// Repeats `request` until it answers `status` (the instance notices an
/// engine change at its next call; bounded).
async fn wait_for_status<F, Fut>(request: F, status: u16) -> reqwest::Response
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<reqwest::Response, reqwest::Error>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let res = request().await.expect("request sent");
        if res.status().as_u16() == status {
            return res;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {} after {WAIT:?}", res.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
