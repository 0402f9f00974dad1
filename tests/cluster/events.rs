//! One event stream: the same ids and content on every instance, cursors
//! that resume anywhere, one registry.

use serde_json::{Value, json};

use crate::harness::{Cluster, NODE_TTL, WAIT, online_on};

async fn markers(rt: &letta_bridge_testkit::FakeRuntime, from: usize, to: usize) {
    for i in from..to {
        rt.emit("marker", "agent-1", "conv-1", json!({"i": i}));
    }
}

#[tokio::test]
async fn every_instance_serves_the_same_events_with_the_same_ids_in_the_same_order() {
    let Some(cluster) = Cluster::start("same_ids", 3) else { return };
    let mut streams = Vec::new();
    for i in 1..=3 {
        streams.push(cluster.events(i, "?types=marker").await);
    }
    let rt = cluster.runtime(1, "dev-ids").await;
    markers(&rt, 0, 50).await;
    let mut seen: Vec<Vec<(String, Value)>> = Vec::new();
    for sse in &mut streams {
        let mut got = Vec::new();
        for _ in 0..50 {
            let e = sse.next_of("marker").await;
            got.push((e.id, e.data));
        }
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "instance 1 and 2");
    assert_eq!(seen[0], seen[2], "instance 1 and 3");
    let order: Vec<i64> = seen[0].iter().map(|(_, d)| d["i"].as_i64().unwrap()).collect();
    assert_eq!(order, (0..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_cursor_from_one_instance_resumes_on_another_without_gap_or_duplicate() {
    let Some(cluster) = Cluster::start("resume_across", 3) else { return };
    let mut on2 = cluster.events(2, "?types=marker").await;
    let rt = cluster.runtime(1, "dev-resume").await;
    markers(&rt, 0, 20).await;
    let mut cursor = String::new();
    for _ in 0..20 {
        cursor = on2.next_of("marker").await.id;
    }
    drop(on2);
    markers(&rt, 20, 50).await;
    let mut on3 = cluster.at(3).events(&format!("?types=marker,reset&last_event_id={cursor}")).await.waiting(WAIT);
    let mut got = Vec::new();
    for _ in 20..50 {
        let e = on3.next().await;
        assert_eq!(e.event, "marker", "no reset: {e:?}");
        got.push(e.data["i"].as_i64().unwrap());
    }
    assert_eq!(got, (20..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_cursor_a_little_ahead_of_an_instance_is_waited_for_not_reset() {
    let Some(cluster) = Cluster::start("cursor_ahead", 2) else { return };
    let mut on2 = cluster.events(2, "").await;
    let rt = cluster.runtime(1, "dev-ahead").await;
    online_on(&mut [&mut on2], "dev-ahead").await;
    let status = cluster.at(2).get_json("/status").await;
    let now = status["events"]["cursor"].as_str().unwrap().to_owned();
    let (epoch, seq) = now.rsplit_once('-').unwrap();
    // Two events later than this instance has: what a client could hold
    // from an instance whose mirror is ahead.
    let ahead = format!("{epoch}-{}", seq.parse::<u64>().unwrap() + 2);
    let bridge = cluster.at(2);
    let query = format!("?types=marker,reset&last_event_id={ahead}");
    let open = bridge.events(&query);
    let emit = async {
        // The request must reach the instance before the events exist (it
        // cannot tell us when it did): without the wait it would answer
        // `reset` (unknown_cursor) at once.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        markers(&rt, 0, 3).await;
    };
    let (mut resumed, ()) = tokio::join!(open, emit);
    let first = resumed.next().await;
    assert_eq!(first.event, "marker", "resumed without a reset: {first:?}");
    assert_eq!(first.data["i"], 2, "the first event after the cursor");
}

#[tokio::test]
async fn every_instance_lists_the_clusters_runtimes_and_instances() {
    let Some(cluster) = Cluster::start("registry", 3) else { return };
    let mut on2 = cluster.events(2, "").await;
    let _a = cluster.runtime(1, "dev-a").await;
    let _c = cluster.runtime(3, "dev-c").await;
    online_on(&mut [&mut on2], "dev-a").await;
    online_on(&mut [&mut on2], "dev-c").await;
    let strip = |mut list: Value| {
        for r in list.as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("last_pong_at");
        }
        list
    };
    let lists: Vec<Value> =
        futures_util::future::join_all(cluster.bridges.iter().map(|b| b.get_json("/runtimes"))).await;
    let lists: Vec<Value> = lists.into_iter().map(strip).collect();
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[0], lists[2]);
    let ids: Vec<(&str, &str)> = lists[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["instance"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, vec![("dev-a", "n1"), ("dev-c", "n3")]);
    // The instance list is read at each lease renewal (a third of the
    // lease), not published: look until it shows, bounded.
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    loop {
        let status = cluster.at(2).get_json("/status").await;
        assert_eq!(status["cluster"]["engine"], "ok");
        let mut instances: Vec<String> = serde_json::from_value(status["cluster"]["instances"].clone()).unwrap();
        instances.sort();
        if instances == ["n1", "n2", "n3"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "instances: {instances:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_runtime_writing_faster_than_redis_appends_is_slowed_not_cut() {
    // A ring larger than the burst: a `lagged` here would be the reader's
    // slowness, not what this test is about (the appender's queue, 10,000).
    let Some(cluster) = Cluster::start_args("fast_runtime", 2, NODE_TTL, &["--replay-events", "100000"]) else {
        return;
    };
    let mut on2 = cluster.events(2, "?types=marker,runtime_offline,lagged").await;
    let rt = cluster.runtime(1, "dev-fast").await;
    const N: i64 = 20_000;
    markers(&rt, 0, N as usize).await;
    let mut next = 0;
    while next < N {
        let e = on2.next().await;
        assert_eq!(e.event, "marker", "the runtime was cut or events lost: {e:?}");
        assert_eq!(e.data["i"], next, "in order, none lost");
        next += 1;
    }
}
