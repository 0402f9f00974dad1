//! Webhooks in a cluster: hooks live in Redis (made on one instance,
//! listed and deleted on another), each event is delivered once for the
//! cluster by the instance holding the webhooks lease, and when that
//! instance is killed mid-retry another takes the lease and delivers what
//! was pending, with the same `webhook-id`, in order. Deliveries are
//! checked by the PyPI `standardwebhooks` receiver of the API tests.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Cluster, WAIT, admin};

#[path = "../api/webhooks/receiver.rs"]
mod receiver;

use receiver::Receiver;

/// Three instances whose hooks may post to loopback and retry every 300 ms.
fn start(test: &str) -> Option<Cluster> {
    let extra = ["--webhook-allow", "127.0.0.1", "--webhook-schedule", "300ms,300ms,300ms,300ms,300ms"];
    Cluster::start_args(test, 3, crate::harness::NODE_TTL, &extra)
}

/// Makes a hook for `turn.finished` on instance `i`, trusted by `receiver`.
async fn make(cluster: &Cluster, i: usize, receiver: &Receiver) -> Value {
    let body = json!({"url": receiver.url, "events": ["turn.finished"]});
    let res = cluster.at(i).post_as(admin(), "/webhooks", &body).await;
    assert_eq!(res.status(), 201, "POST /webhooks on instance {i}");
    let hook: Value = res.json().await.unwrap();
    receiver.trust(&hook);
    hook
}

/// `GET {path}` on instance `i` as the admin.
async fn get(cluster: &Cluster, i: usize, path: &str) -> reqwest::Response {
    let b = cluster.at(i);
    b.http.get(b.url(path)).bearer_auth(admin()).send().await.unwrap()
}

fn finish_turn(rt: &letta_bridge_testkit::FakeRuntime, turn: &str) {
    rt.emit("turn_finished", "agent-1", "conv-1", json!({"stop_reason": "end_turn", "turn_id": turn, "run_id": "r"}));
}

/// The instance (1-based) holding the webhooks lease.
async fn leader(cluster: &Cluster) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let holder = cluster.redis.command(&format!("GET {}", cluster.key("wh-lease")));
        // A bulk string, `$<len>\r\nn<i>:<random>\r\n`.
        let value = holder.lines().nth(1).unwrap_or_default();
        if let Some(i) = value.strip_prefix('n').and_then(|h| h.split(':').next()?.parse().ok()) {
            return i;
        }
        assert!(tokio::time::Instant::now() < deadline, "no webhooks leader: {holder:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_event_is_delivered_once_for_a_cluster_of_three_instances() {
    let Some(cluster) = start("webhooks_once") else { return };
    let mut receiver = Receiver::start("127.0.0.1", &[]).await;
    let hook = make(&cluster, 1, &receiver).await;
    let rt = cluster.runtime(2, "dev-w").await;
    for n in 1..=5 {
        finish_turn(&rt, &format!("turn-{n}"));
    }
    let mut ids = Vec::new();
    for n in 1..=5 {
        let line = receiver.next().await;
        assert_eq!(line["body"]["data"]["turn_id"], format!("turn-{n}"), "in order: {line}");
        ids.push(line["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 5, "five deliveries, five webhook-ids");
    assert!(receiver.quiet(Duration::from_secs(2)).await, "each event once, not once per instance");
    let deliveries: Vec<Value> =
        get(&cluster, 3, &format!("/webhooks/{}/deliveries", hook["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(deliveries.len(), 5, "{deliveries:?}");
    assert!(deliveries.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{deliveries:?}");
}

#[tokio::test]
async fn a_hook_made_on_one_instance_is_listed_and_deleted_on_another() {
    let Some(cluster) = start("webhooks_shared") else { return };
    let receiver = Receiver::start("127.0.0.1", &[]).await;
    let hook = make(&cluster, 1, &receiver).await;
    let id = hook["id"].as_str().unwrap();
    let listed: Vec<Value> = get(&cluster, 2, "/webhooks").await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((&listed[0]["id"], &listed[0]["url"]), (&hook["id"], &hook["url"]));
    assert!(listed[0].get("secret").is_none(), "the secret is shown once");
    assert_eq!(get(&cluster, 3, &format!("/webhooks/{id}/deliveries")).await.status(), 200);

    let b = cluster.at(2);
    let deleted = b.http.delete(b.url(&format!("/webhooks/{id}"))).bearer_auth(admin()).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let listed: Vec<Value> = get(&cluster, 3, "/webhooks").await.json().await.unwrap();
    assert_eq!(listed, Vec::<Value>::new());
    let b = cluster.at(1);
    let again = b.http.delete(b.url(&format!("/webhooks/{id}"))).bearer_auth(admin()).send().await.unwrap();
    assert_eq!(again.status(), 404, "deleted for the whole cluster");
}

#[tokio::test]
async fn a_delivery_pending_when_its_instance_is_killed_is_delivered_by_another_in_order() {
    let Some(mut cluster) = start("webhooks_takeover") else { return };
    let mut receiver = Receiver::start("127.0.0.1", &[500, 500, 500]).await;
    let hook = make(&cluster, 1, &receiver).await;
    let path = format!("/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
    let lead = leader(&cluster).await;
    let (runtime_on, asked_on) = match lead {
        1 => (2, 3),
        2 => (3, 1),
        _ => (1, 2),
    };
    let rt = cluster.runtime(runtime_on, "dev-k").await;
    for n in 1..=3 {
        finish_turn(&rt, &format!("turn-{n}"));
    }
    let first = receiver.next().await;
    assert_eq!((first["answered"].as_u64(), &first["body"]["data"]["turn_id"]), (Some(500), &json!("turn-1")));
    // Killed once two failed attempts are on record (the third is 300 ms away).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let deliveries: Vec<Value> = get(&cluster, asked_on, &path).await.json().await.unwrap();
        if deliveries.last().is_some_and(|d| d["attempts"] == 2) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "two attempts on record: {deliveries:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.bridges[lead - 1].kill();

    // Another instance takes the lease and goes on with turn-1's retries.
    let mut seen = vec![first];
    while seen.iter().filter(|l| l["answered"] == 200).count() < 3 {
        seen.push(receiver.next().await);
    }
    assert!(receiver.quiet(Duration::from_secs(2)).await, "nothing more: {seen:?}");
    let delivered: Vec<_> =
        seen.iter().filter(|l| l["answered"] == 200).map(|l| l["body"]["data"]["turn_id"].clone()).collect();
    assert_eq!(delivered, [json!("turn-1"), json!("turn-2"), json!("turn-3")], "none lost, in order");
    let turn1: Vec<_> = seen.iter().filter(|l| l["body"]["data"]["turn_id"] == "turn-1").collect();
    assert!(turn1.len() >= 4, "three 500s, then 200: {turn1:?}");
    assert!(turn1.iter().all(|l| l["id"] == turn1[0]["id"]), "one webhook-id for every attempt: {turn1:?}");
    assert_ne!(leader(&cluster).await, lead, "another instance leads");

    let deliveries: Vec<Value> = get(&cluster, asked_on, &path).await.json().await.unwrap();
    let oldest = deliveries.last().unwrap();
    assert_eq!((oldest["status"].as_str(), &oldest["id"]), (Some("delivered"), &turn1[0]["id"]));
    // Counted from the two on record: at least one more after the kill (had
    // the count restarted, at most two: a 500 and the 200).
    assert!(oldest["attempts"].as_u64().unwrap() >= 3, "the attempts before the kill are kept: {oldest}");
}

#[tokio::test]
async fn hooks_and_their_deliveries_outlive_a_restart_of_every_instance_and_any_instance_redelivers() {
    let Some(mut cluster) = start("webhooks_restart") else { return };
    let mut receiver = Receiver::start("127.0.0.1", &[]).await;
    let hook = make(&cluster, 1, &receiver).await;
    let rt = cluster.runtime(2, "dev-r").await;
    finish_turn(&rt, "turn-1");
    let first = receiver.next().await;
    assert_eq!(first["body"]["data"]["turn_id"], "turn-1");
    drop(rt);
    for i in 1..=3 {
        cluster.bridges[i - 1].stop();
    }
    for i in 1..=3 {
        cluster.add(i);
    }

    let listed: Vec<Value> = get(&cluster, 3, "/webhooks").await.json().await.unwrap();
    assert_eq!(listed.len(), 1, "the hook is in Redis: {listed:?}");
    assert_eq!(listed[0]["id"], hook["id"]);
    let path = format!("/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
    let deliveries: Vec<Value> = get(&cluster, 2, &path).await.json().await.unwrap();
    assert_eq!((deliveries.len(), &deliveries[0]["id"]), (1, &first["id"]), "{deliveries:?}");

    let rt = cluster.runtime(1, "dev-r").await;
    finish_turn(&rt, "turn-2");
    let second = receiver.next().await;
    assert_eq!(second["body"]["data"]["turn_id"], "turn-2", "delivered after the restart: {second}");

    let retry = format!("{path}/{}/retry", first["id"].as_str().unwrap());
    let b = cluster.at(3);
    let res = b.http.post(b.url(&retry)).bearer_auth(admin()).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let again = receiver.next().await;
    assert_eq!(
        (&again["id"], &again["body"]["data"]["turn_id"]),
        (&first["id"], &json!("turn-1")),
        "the same webhook-id"
    );
    assert!(receiver.quiet(Duration::from_secs(1)).await, "each once");
}

#[tokio::test]
async fn a_hooks_list_keeps_its_newest_thousand_pending_deliveries_and_marks_the_oldest_dropped() {
    let extra = ["--webhook-allow", "127.0.0.1", "--webhook-schedule", "1h"];
    let Some(cluster) = Cluster::start_args("webhooks_full", 2, crate::harness::NODE_TTL, &extra) else { return };
    // Nothing listens on port 1: every first attempt fails, the next is an hour away.
    let body = json!({"url": "http://127.0.0.1:1/hook", "events": ["turn_finished"]});
    let hook: Value = cluster.at(1).post_as(admin(), "/webhooks", &body).await.json().await.unwrap();
    let rt = cluster.runtime(2, "dev-f").await;
    for n in 1..=1005 {
        finish_turn(&rt, &format!("turn-{n}"));
    }
    let path = format!("/webhooks/{}/deliveries", hook["id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + WAIT;
    let deliveries = loop {
        let deliveries: Vec<Value> = get(&cluster, 2, &path).await.json().await.unwrap();
        if deliveries.len() == 1005 {
            break deliveries;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} deliveries on record", deliveries.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dropped: Vec<_> =
        deliveries.iter().filter(|d| d["status"] == "dropped").map(|d| d["id"].as_str().unwrap()).collect();
    let oldest: Vec<_> = deliveries[1000..].iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(dropped, oldest, "the five oldest are dropped");
    let listed: Vec<Value> = get(&cluster, 1, "/webhooks").await.json().await.unwrap();
    assert_eq!(listed[0]["pending"], 1000, "the newest thousand are pending");
}
