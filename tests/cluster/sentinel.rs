//! Redis that fails over: instances on `redis+sentinel://` follow the
//! promoted replica when the primary dies under load, and the new primary
//! of a switchover; a promoted replica that missed events starts a new
//! epoch; a Redis that refuses writes (`READONLY`, `NOREPLICAS`) makes an
//! instance unavailable at once.

use std::collections::HashMap;
use std::time::Duration;

use letta_bridge_testkit::bridge::{BridgeProcess, RUNTIME_TOKEN};
use letta_bridge_testkit::sentinel::{MASTER, SentinelSet};
use letta_bridge_testkit::{FakeRuntime, SseEvent};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::harness::{Cluster, TempDir, WAIT, authed, input, skip};

const BIN: &str = env!("CARGO_BIN_EXE_letta-bridge");

/// Events before the primary is killed, and after.
const BEFORE: i64 = 100;
const AFTER: i64 = 200;

/// The longest a failover may keep commands from succeeding (Sentinel's
/// 1 s down-after, its election and promotion, the instances' next ask).
const RECOVERY: Duration = Duration::from_secs(15);

/// A primary, a replica, three Sentinels, and two instances on
/// `redis+sentinel://` (dropped in field order: bridges, Redis, folder;
/// bind it whole, not destructured, to keep that order).
struct Failover {
    bridges: Vec<BridgeProcess>,
    set: SentinelSet,
    _dir: TempDir,
}

impl Failover {
    fn start(test: &str) -> Option<Self> {
        let dir = TempDir::new(test);
        let Some(set) = SentinelSet::start(&dir.path.join("redis")) else {
            skip(test, "redis-server");
            return None;
        };
        let url = set.url();
        // A lease longer than the failover: no instance fences itself here.
        let bridges = (1..=2)
            .map(|i| {
                let (log, node) = (dir.path.join(format!("bridge-{i}.log")), format!("n{i}"));
                let args =
                    ["--cluster-url", &url, "--cluster-name", "sentinel", "--node-id", &node, "--node-ttl", "10s"];
                BridgeProcess::start(BIN, log, &args)
            })
            .collect();
        Some(Self { bridges, set, _dir: dir })
    }
}

#[tokio::test]
async fn instances_follow_the_promoted_replica_and_each_subscriber_gets_every_event_once_or_a_reset() {
    let Some(mut failover) = Failover::start("sentinel_failover") else { return };
    let Failover { bridges, set, .. } = &mut failover;
    let mut streams = Vec::new();
    for bridge in bridges.iter() {
        streams.push(bridge.events("?types=marker,reset").await.waiting(WAIT));
    }
    let rt = FakeRuntime::connect_ready(&format!("ws://{}/ws?deviceId=dev-s", bridges[0].addr), RUNTIME_TOKEN).await;
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    for i in 0..BEFORE {
        pace.tick().await;
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    for sse in &mut streams {
        sse.next_matching("marker before the kill", |e| e.data["i"] == BEFORE - 1).await;
    }

    set.kill(0);
    let killed = Instant::now();
    let probe = tokio::spawn(commands_until_they_succeed(bridges[1].http.clone(), bridges[1].base_url(), killed));
    for i in BEFORE..BEFORE + AFTER {
        pace.tick().await;
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    let recovered = probe.await.unwrap();
    eprintln!("failover: commands answered 202 again {} ms after the primary was killed", recovered.as_millis());
    assert!(recovered < RECOVERY, "commands failed for {recovered:?} after the primary died");
    assert_eq!(set.primary_port(), Some(set.nodes[1].port), "the Sentinels promoted the replica");

    let last = BEFORE + AFTER;
    rt.emit("marker", "agent-1", "conv-1", json!({"i": last}));
    let mut ids: HashMap<String, i64> = HashMap::new();
    for (n, sse) in streams.iter_mut().enumerate() {
        sse.next_matching("the last marker", |e| e.data["i"] == last).await;
        let seen: Vec<&SseEvent> = sse.seen.iter().filter(|e| e.event == "marker" || e.event == "reset").collect();
        each_event_once_or_a_reset(n + 1, &seen, last);
        for e in seen.iter().filter(|e| e.event == "marker") {
            let i = e.data["i"].as_i64().unwrap();
            assert_eq!(*ids.entry(e.id.clone()).or_insert(i), i, "id {} names one event on every instance", e.id);
        }
    }
    let reply: Value = bridges[1].post("/input?wait=true", &input("after")).await.json().await.unwrap();
    assert_eq!(reply["accepted"], true, "a command across instances after the failover: {reply}");
}

#[tokio::test]
async fn a_switchover_moves_every_connection_of_every_instance_to_the_new_primary_and_loses_no_event() {
    let Some(failover) = Failover::start("sentinel_switchover") else { return };
    let Failover { bridges, set, .. } = &failover;
    let mut streams = Vec::new();
    for bridge in bridges.iter() {
        streams.push(bridge.events("?types=marker,reset").await.waiting(WAIT));
    }
    let rt = FakeRuntime::connect_ready(&format!("ws://{}/ws?deviceId=dev-w", bridges[0].addr), RUNTIME_TOKEN).await;
    rt.emit("marker", "agent-1", "conv-1", json!({"i": 0}));
    for sse in &mut streams {
        sse.next_of("marker").await;
    }
    // A planned switchover: the old primary stays up, a primary still,
    // until Sentinel turns it into a replica (seconds later).
    let answer = set.ask_sentinel(0, &format!("SENTINEL FAILOVER {MASTER}"));
    assert!(answer.starts_with("+OK"), "{answer}");
    let started = Instant::now();
    // Each instance listens on its channel and mirrors the log on the new primary only.
    let channels: Vec<_> = (1..=bridges.len()).map(|i| format!("lb:{{sentinel}}:node:n{i}:inbox")).collect();
    let on = |node: usize| {
        let listening =
            channels.iter().filter(|c| set.command(node, &format!("PUBSUB NUMSUB {c}")).trim_end().ends_with(":1"));
        (listening.count(), set.command(node, "CLIENT LIST").matches("cmd=xread").count())
    };
    let mut every = tokio::time::interval(Duration::from_millis(50));
    while on(1) != (2, 2) || on(0) != (0, 0) {
        every.tick().await;
        assert!(started.elapsed() < Duration::from_secs(5), "new primary {:?}, old {:?}", on(1), on(0));
    }
    eprintln!(
        "switchover: every connection on the new primary {} ms after SENTINEL FAILOVER",
        started.elapsed().as_millis()
    );
    for i in 1..=3 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    for sse in &mut streams {
        for i in 1..=3 {
            assert_eq!(sse.next_of("marker").await.data["i"], i, "every event once, in order: {}", sse.summary());
        }
    }
    let reply: Value = bridges[1].post("/input?wait=true", &input("after")).await.json().await.unwrap();
    assert_eq!(reply["accepted"], true, "a command across instances after the switchover: {reply}");
}

#[tokio::test]
async fn a_promoted_replica_that_missed_events_the_mirrors_read_starts_a_new_epoch_and_every_stream_gets_a_reset() {
    let Some(mut failover) = Failover::start("sentinel_lagged") else { return };
    let Failover { bridges, set, .. } = &mut failover;
    let mut streams = Vec::new();
    for bridge in bridges.iter() {
        streams.push(bridge.events("?types=marker,reset").await.waiting(WAIT));
    }
    let rt = FakeRuntime::connect_ready(&format!("ws://{}/ws?deviceId=dev-l", bridges[0].addr), RUNTIME_TOKEN).await;
    let mut seen = Vec::new();
    for i in 0..5 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    for sse in &mut streams {
        seen.push(sse.next_matching("marker 4", |e| e.data["i"] == 4).await.id);
    }
    // The replica falls behind: its link to the primary breaks and cannot
    // come back (the primary now wants a password; connections already open
    // stay logged in, the instances' and the Sentinels' alike).
    assert!(set.command(0, "CONFIG SET requirepass lagging").starts_with("+OK"));
    assert!(set.command(1, "CLIENT KILL TYPE master").starts_with(':'));
    for i in 5..10 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    for sse in &mut streams {
        seen.push(sse.next_matching("marker 9", |e| e.data["i"] == 9).await.id);
    }
    set.kill(0);
    for i in 10..13 {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
    let epoch = |id: &str| id.split('-').next().unwrap_or_default().to_owned();
    for (n, sse) in streams.iter_mut().enumerate() {
        let reset = sse.next_of("reset").await;
        assert_eq!(reset.data["reason"], "other_epoch", "on instance {}", n + 1);
        for i in 10..13 {
            let event = sse.next_of("marker").await;
            assert_eq!(event.data["i"], i, "on instance {}, after the reset: {}", n + 1, sse.summary());
            assert!(seen.iter().all(|id| epoch(id) != epoch(&event.id)), "a new epoch: {} after {seen:?}", event.id);
        }
    }
    assert_eq!(set.primary_port(), Some(set.nodes[1].port), "the Sentinels promoted the replica");
}

/// Before a `reset`, every marker from 0, once, in order; after one, in
/// order again; without one, each of `0..=last` exactly once.
fn each_event_once_or_a_reset(instance: usize, seen: &[&SseEvent], last: i64) {
    let mut previous = None;
    let mut resets = 0;
    for e in seen {
        if e.event == "reset" {
            assert_eq!(e.data["reason"], "other_epoch", "on instance {instance}: {}", e.data);
            resets += 1;
            previous = None;
            continue;
        }
        let i = e.data["i"].as_i64().unwrap();
        match previous {
            Some(p) => assert!(i > p, "on instance {instance}: {i} after {p} (a duplicate or out of order)"),
            None if resets == 0 => assert_eq!(i, 0, "on instance {instance}: the first marker"),
            None => {}
        }
        if resets == 0
            && let Some(p) = previous
        {
            assert_eq!(i, p + 1, "on instance {instance}: a gap without a reset");
        }
        previous = Some(i);
    }
    assert_eq!(previous, Some(last), "on instance {instance}: the stream reaches the last marker");
    eprintln!("failover: instance {instance} saw {} events and {resets} reset(s)", seen.len());
}

/// `POST /input` every 50 ms from `since` until one is accepted after one
/// was refused (503 + Retry-After, engine unavailable); how long from `since`.
async fn commands_until_they_succeed(http: reqwest::Client, base: String, since: Instant) -> Duration {
    let mut refused = false;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    loop {
        every.tick().await;
        assert!(since.elapsed() < RECOVERY * 2, "commands still fail {:?} after the kill", since.elapsed());
        let Ok(res) = authed(http.post(format!("{base}/input"))).json(&input("probe")).send().await else { continue };
        match res.status().as_u16() {
            202 if refused => return since.elapsed(),
            202 => {}
            503 => {
                assert!(res.headers().contains_key("retry-after"));
                let problem: Value = res.json().await.unwrap();
                // Redis away, or the holder's channel not subscribed again yet.
                let retry = ["urn:letta-bridge:engine-unavailable", "urn:letta-bridge:runtime-unreachable"];
                assert!(retry.contains(&problem["type"].as_str().unwrap_or("")), "{problem}");
                refused = true;
            }
            other => panic!("a command during the failover answered {other}"),
        }
    }
}

#[tokio::test]
async fn a_redis_that_turned_replica_makes_the_instance_unavailable_at_once_and_answers_again_when_it_is_primary() {
    refused_writes_make_the_instance_unavailable("redis_readonly", "REPLICAOF 127.0.0.1 1", "REPLICAOF NO ONE").await;
}

#[tokio::test]
async fn a_redis_short_of_replicas_makes_the_instance_unavailable_at_once_and_answers_again_when_it_accepts_writes() {
    refused_writes_make_the_instance_unavailable(
        "redis_noreplicas",
        "CONFIG SET min-replicas-to-write 1",
        "CONFIG SET min-replicas-to-write 0",
    )
    .await;
}

/// After `refuse`, the next write (an event's append) makes `/readyz` and
/// commands 503 within a second, long before the lease would notice; after
/// `accept`, the events of the meantime arrive once, in order.
async fn refused_writes_make_the_instance_unavailable(test: &str, refuse: &str, accept: &str) {
    // A lease of 30 s: its renewals (every 10 s) cannot be what notices.
    let Some(cluster) = Cluster::start_args(test, 1, "30s", &[]) else { return };
    let mut sse = cluster.events(1, "?types=marker,reset").await;
    let rt = cluster.runtime(1, "dev-r").await;
    rt.emit("marker", "agent-1", "conv-1", json!({"i": 0}));
    sse.next_of("marker").await;
    let answer = cluster.redis.command(refuse);
    assert!(answer.starts_with("+OK"), "{answer}");

    let refused_at = Instant::now();
    rt.emit("marker", "agent-1", "conv-1", json!({"i": 1}));
    let (http, base) = (cluster.at(1).http.clone(), cluster.at(1).base_url());
    status_within(&http, &format!("{base}/readyz"), 503, Duration::from_secs(1)).await;
    eprintln!("{test}: /readyz answered 503 {} ms after writes were refused", refused_at.elapsed().as_millis());
    // Reads still answer (the mirror's blocking read returns every second):
    // they do not make the instance ready while writes are refused.
    let mut every = tokio::time::interval(Duration::from_millis(50));
    while refused_at.elapsed() < Duration::from_millis(1500) {
        every.tick().await;
        assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 503, "ready again while refused");
    }
    let command = authed(http.post(format!("{base}/input"))).json(&input("x")).send().await.unwrap();
    assert_eq!(command.status(), 503);
    assert_eq!(command.headers()["retry-after"], "2");
    let problem: Value = command.json().await.unwrap();
    assert_eq!(problem["type"], "urn:letta-bridge:engine-unavailable", "{problem}");
    let status = cluster.at(1).get_json("/status").await;
    assert_eq!(status["cluster"]["engine"], "unavailable", "{status}");

    rt.emit("marker", "agent-1", "conv-1", json!({"i": 2}));
    let answer = cluster.redis.command(accept);
    assert!(answer.starts_with("+OK"), "{answer}");
    status_within(&http, &format!("{base}/readyz"), 200, WAIT).await;
    let got = [sse.next_of("marker").await, sse.next_of("marker").await].map(|e| e.data["i"].as_i64().unwrap());
    assert_eq!(got, [1, 2], "the events of the meantime, once, in order: {}", sse.summary());
    let after = authed(http.post(format!("{base}/input"))).json(&input("after")).send().await.unwrap();
    assert_eq!(after.status(), 202);
}

/// Polls `url` until it answers `status`, for at most `within`.
async fn status_within(http: &reqwest::Client, url: &str, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = http.get(url).send().await.unwrap().status().as_u16();
        if got == status {
            return;
        }
        assert!(Instant::now() < deadline, "{url} still {got} after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
